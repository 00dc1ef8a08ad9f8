"""beacon.verify: one receipt verification, and every check it makes failing on tampered evidence."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from beacon.canonical import jcs
from beacon.errors import ExitCode, VerificationError
from beacon.harness.evidence import EvidenceError
from beacon.keys import Ed25519Key
from beacon.receipts import issue_harness_receipt, issue_receipt_with_leaf
from beacon.signing import SignatureError, sign_document
from beacon.transparency.checkpoint import Checkpoint, CheckpointError
from beacon.transparency.cid import CIDError
from beacon.transparency.ipfs import ContentIntegrityError
from beacon.transparency.merkle import InMemoryTree, ProofError
from beacon.transparency.monitor import ForkDetected
from beacon.transparency.note import NoteError, Signer
from beacon.transparency.proof import TlogProofError, make_proof
from beacon.verify import CHECKS, ReceiptError, verify_inclusion, verify_receipt
from tests.test_receipts import FACTS

ORIGIN = "example.com/verify"
KEY = Ed25519Key.from_seed(b"\x05" * 32)
LOG = Signer(ORIGIN, KEY)  # the runner signs its log under the log's origin


def logged(receipt: dict[str, Any], index: int = 2, size: int = 5) -> tuple[str, InMemoryTree]:
    """The tlog-proof of ``receipt`` as leaf ``index`` of a log of ``size`` leaves, and the log."""
    entries = [f"pad {i}".encode() for i in range(size)]
    entries[index] = jcs(receipt)
    tree = InMemoryTree.from_entries(entries)
    note = Checkpoint(ORIGIN, size, tree.root(size)).sign(LOG)
    return make_proof(index, tree.inclusion_proof(index, size), note), tree


def tampered(receipt: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(receipt)
    target = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return changed


def failed_check(receipt: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, *args, **kwargs)
    return caught.value.check, str(caught.value)


def test_an_intact_receipt_verifies_with_everything_it_claims() -> None:
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    proof, _ = logged(receipt)
    verified = verify_receipt(receipt, KEY.public_key_b64, proof=proof, index=2, output=FACTS.output)
    assert verified.signed_by == KEY.public_key_b64 and verified.receipt_id == receipt["receipt_id"]
    assert verified.leaf_index == 2 and verified.checkpoint is not None and verified.checkpoint.size == 5
    assert verified.checkpoint.verified_by == (ORIGIN,)
    # Without a proof, inclusion is not checked, and the result says so.
    assert verify_receipt(receipt, [KEY.public_key]).checkpoint is None


@pytest.mark.parametrize(
    ("path", "value", "check", "reason"),
    [
        (("schema",), "beacon.receipt/v0", "form", "unknown receipt schema"),
        (("schema",), 1, "form", "unknown receipt schema"),
        (("receipt_id",), "rc_forged", "receipt_id", "receipt_id does not match"),
        (("attempt",), 3, "receipt_id", "receipt_id does not match"),
        (("execution_id",), "ex_other", "receipt_id", "receipt_id does not match"),
        (("output", "text"), "something else", "output", "output.sha256"),
        (("output", "sha256"), "00" * 32, "output", "output.sha256"),
        (("region", "served"), "EU", "signature", "signature does not match"),
        (("status",), "failed", "signature", "signature does not match"),
    ],
)
def test_each_tampered_claim_fails_its_check(
    path: tuple[str, ...], value: Any, check: str, reason: str
) -> None:
    receipt = tampered(issue_receipt_with_leaf(FACTS, KEY)[0], path, value)
    got, message = failed_check(receipt, KEY.public_key_b64)
    assert got == check and reason in message


def test_a_tampered_receipt_resigned_by_its_tamperer_still_fails_its_claims() -> None:
    """Re-signing after the change makes the signature verify under the tamperer's key: the receipt's
    own claims (id, output hash) and the pinned key still refuse it."""
    forger = Ed25519Key.generate()
    for path, value, check in [
        (("receipt_id",), "rc_forged", "receipt_id"),
        (("output", "text"), "altered answer", "output"),
    ]:
        forged = sign_document(tampered(issue_receipt_with_leaf(FACTS, KEY)[0], path, value), forger)
        assert failed_check(forged, forger.public_key_b64)[0] == check
    intact_but_foreign = issue_receipt_with_leaf(FACTS, forger)[0]
    assert failed_check(intact_but_foreign, KEY.public_key_b64) == (
        "signature",
        "signed by a different key than the one expected",
    )
    verify_receipt(intact_but_foreign, intact_but_foreign["public_key"])  # intact under its own key


def test_the_output_at_hand_must_be_the_output_the_receipt_hashes() -> None:
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    check, message = failed_check(receipt, KEY.public_key_b64, output="another answer")
    assert check == "output" and "output given" in message


def test_a_wrong_key_or_no_key_fails_the_signature() -> None:
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    assert failed_check(receipt, Ed25519Key.generate().public_key_b64)[0] == "signature"
    assert failed_check(receipt, [])[0] == "signature"
    # One of several pinned keys (current and rotated) is enough.
    assert verify_receipt(receipt, [Ed25519Key.generate().public_key, KEY.public_key]).signed_by == (
        KEY.public_key_b64
    )


def test_a_wrong_proof_fails_inclusion() -> None:
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    proof, tree = logged(receipt)
    # The proof of another leaf, a proof for the right leaf under another index, a truncated path.
    other_leaf = make_proof(1, tree.inclusion_proof(1, 5), proof.split("\n\n", 1)[1])
    check, message = failed_check(receipt, KEY.public_key_b64, proof=other_leaf)
    assert check == "inclusion" and "inclusion" in message
    assert failed_check(receipt, KEY.public_key_b64, proof=proof, index=3) == (
        "inclusion",
        "the tlog-proof is for leaf 2, not 3",
    )
    head, note = proof.split("\n\n", 1)
    short = "\n".join(head.split("\n")[:-1]) + "\n\n" + note
    assert failed_check(receipt, KEY.public_key_b64, proof=short)[0] == "inclusion"
    assert failed_check(receipt, KEY.public_key_b64, proof="not a tlog-proof")[0] == "inclusion"


def test_a_checkpoint_not_signed_by_a_trusted_log_key_fails_inclusion() -> None:
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    _, tree = logged(receipt)
    stranger = Signer(ORIGIN, Ed25519Key.generate())
    forged_note = Checkpoint(ORIGIN, 5, tree.root(5)).sign(stranger)
    forged = make_proof(2, tree.inclusion_proof(2, 5), forged_note)
    check, message = failed_check(receipt, KEY.public_key_b64, proof=forged)
    assert check == "inclusion" and "checkpoint signature" in message
    # Pinned log keys are used instead of the runner keys when given.
    genuine, _ = logged(receipt)
    check, _ = failed_check(receipt, KEY.public_key_b64, proof=genuine, log_keys=[stranger.verifier])
    assert check == "inclusion"
    # No log key pinned at all is no key, not "fall back to the runner's".
    assert failed_check(receipt, KEY.public_key_b64, proof=genuine, log_keys=[])[0] == "inclusion"


def test_an_altered_receipt_is_not_the_logged_leaf() -> None:
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    proof, _ = logged(receipt)
    resigned = sign_document(tampered(receipt, ("status",), "cancelled"), KEY)  # valid claims, valid key
    check, _ = failed_check(resigned, KEY.public_key_b64, proof=proof)
    assert check == "inclusion"
    with pytest.raises(ReceiptError, match="inclusion"):
        verify_inclusion(jcs(resigned), proof, [LOG.verifier])


def test_harness_receipts_must_carry_the_attestation_they_hash() -> None:
    attestation = {"run_id": "r1", "files": {"summary.json": "ab" * 32}}
    receipt = issue_harness_receipt(attestation, KEY, log_origin=ORIGIN, issued_to="operator", issued_at=0.0)
    verify_receipt(receipt, KEY.public_key_b64)
    altered = sign_document({**receipt, "attestation": {**attestation, "run_id": "r2"}}, KEY)
    assert failed_check(altered, KEY.public_key_b64) == (
        "output",
        "attestation_sha256 does not match the attestation",
    )


def test_malformed_receipts_are_refused() -> None:
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    del receipt["host"]
    assert failed_check(receipt, KEY.public_key_b64) == ("form", "the receipt lacks host")
    assert failed_check([1, 2], KEY.public_key_b64) == ("form", "a receipt is a JSON object")
    # A signed document without a schema (a difference report) claims no output to compare.
    report = sign_document({"kind": "beacon.difference-report", "id": "d1"}, KEY)
    assert verify_receipt(report, KEY.public_key_b64).receipt_id is None
    assert failed_check(report, KEY.public_key_b64, output="x")[0] == "output"
    # Another document's schema is no receipt schema; another version of a receipt schema is refused.
    verify_receipt(sign_document({"schema": "beacon.phase-results/v1"}, KEY), KEY.public_key_b64)
    harness_v2 = sign_document({"schema": "beacon.harness-receipt/v2"}, KEY)
    assert failed_check(harness_v2, KEY.public_key_b64)[0] == "form"


def test_every_failure_shares_one_root_with_a_stable_code() -> None:
    assert set(CHECKS) == {"form", "receipt_id", "output", "signature", "inclusion"}
    kinds = [
        SignatureError,
        ReceiptError,
        ProofError,
        NoteError,
        CheckpointError,
        TlogProofError,
        CIDError,
        ContentIntegrityError,
        ForkDetected,
        EvidenceError,
    ]
    assert all(issubclass(kind, VerificationError) for kind in kinds)
    codes = [kind.code for kind in kinds]
    assert len(set(codes)) == len(codes) and "not_verified" not in codes
    assert ForkDetected.exit_code is ExitCode.UNTRUSTED and ReceiptError.exit_code is ExitCode.NOT_VERIFIED
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3]
