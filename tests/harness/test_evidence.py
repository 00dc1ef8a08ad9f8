"""Client-side evidence checks: inclusion (audit path or tlog-proof), consistency, signatures."""

from __future__ import annotations

import pytest

from beacon.harness.evidence import (
    EvidenceError,
    open_signed_checkpoint,
    verify_checkpoint_consistency,
    verify_receipt_inclusion,
    verify_runner_signature,
)
from beacon.keys import Ed25519Key
from beacon.signing import sign_document
from beacon.transparency.checkpoint import Checkpoint
from beacon.transparency.merkle import InMemoryTree
from beacon.transparency.note import Signer
from beacon.transparency.proof import make_proof

SIGNER = Signer("example.com/evidence", Ed25519Key.from_seed(b"\x02" * 32))
VKEYS = [SIGNER.verifier.vkey]
ENTRIES = [f"entry {i}".encode() for i in range(11)]
TREE = InMemoryTree.from_entries(ENTRIES)


def note(size: int) -> str:
    return Checkpoint(SIGNER.name, size, TREE.root(size)).sign(SIGNER)


def hex_path(index: int, size: int) -> list[str]:
    return [h.hex() for h in TREE.inclusion_proof(index, size)]


def test_inclusion_by_audit_path_and_by_tlog_proof() -> None:
    signed = verify_receipt_inclusion(ENTRIES[6], 6, hex_path(6, 11), note(11), VKEYS)
    assert signed.size == 11
    text = make_proof(6, TREE.inclusion_proof(6, 9), note(9))
    assert verify_receipt_inclusion(ENTRIES[6], 6, text, "", VKEYS).size == 9


@pytest.mark.parametrize(
    ("entry", "index", "proof", "message"),
    [
        (ENTRIES[5], 6, hex_path(6, 11), "leaf 6"),  # another entry
        (ENTRIES[6], 6, hex_path(6, 11)[:-1], "leaf 6"),  # a path too short
        (ENTRIES[6], 6, ["zz"], "hex"),
        (ENTRIES[6], 6, make_proof(5, TREE.inclusion_proof(5, 11), note(11)), "for leaf 5, not 6"),
        (ENTRIES[6], 6, "not a tlog-proof", "tlog-proof"),
    ],
)
def test_inclusion_failures_say_what_failed(
    entry: bytes, index: int, proof: list[str] | str, message: str
) -> None:
    with pytest.raises(EvidenceError, match=message):
        verify_receipt_inclusion(entry, index, proof, note(11), VKEYS)


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    stranger = Signer(SIGNER.name, Ed25519Key.generate())
    forged = Checkpoint(SIGNER.name, 11, TREE.root(11)).sign(stranger)
    with pytest.raises(EvidenceError):
        verify_receipt_inclusion(ENTRIES[6], 6, hex_path(6, 11), forged, VKEYS)
    with pytest.raises(EvidenceError, match="no verifier key"):
        open_signed_checkpoint(note(11), [])


def test_consistency_and_forks() -> None:
    old, new = open_signed_checkpoint(note(4), VKEYS), open_signed_checkpoint(note(11), VKEYS)
    verify_checkpoint_consistency(old, new, [h.hex() for h in TREE.consistency_proof(4, 11)])
    with pytest.raises(EvidenceError, match="consistency 4"):
        verify_checkpoint_consistency(old, new, [h.hex() for h in TREE.consistency_proof(3, 11)])
    other = InMemoryTree.from_entries([b"fork"] * 4)
    forked = open_signed_checkpoint(Checkpoint(SIGNER.name, 4, other.root()).sign(SIGNER), VKEYS)
    with pytest.raises(EvidenceError, match="forked"):
        verify_checkpoint_consistency(old, forked, [])


def test_runner_signature_names_the_key_that_signed() -> None:
    runner, other = Ed25519Key.generate(), Ed25519Key.generate()
    document = sign_document({"schema": "x", "value": 1}, runner)
    assert verify_runner_signature(document, [other.public_key_b64, runner.public_key_b64]) == (
        runner.public_key_b64
    )
    with pytest.raises(EvidenceError, match="receipt signature"):
        verify_runner_signature({**document, "value": 2}, [runner.public_key_b64])
