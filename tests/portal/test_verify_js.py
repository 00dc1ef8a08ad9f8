"""The portal's in-browser verification (js/verify.js) against receipts, notes and proofs made by Beacon.

Receipts are signed by ``beacon.receipts``/``beacon.signing``, the tree and proofs come from
``beacon.transparency.merkle``, the checkpoint is a C2SP note from ``beacon.transparency`` — all at
test time, so the JS reads exactly what the runner issues. Each tampering must be caught.
"""

from __future__ import annotations

from typing import Any

import pytest

from beacon.canonical import jcs
from beacon.keys import Ed25519Key
from beacon.portal.browser import Page
from beacon.receipts import ReceiptFacts, build_receipt
from beacon.signing import sign_document
from beacon.transparency.checkpoint import Checkpoint
from beacon.transparency.merkle import InMemoryTree, leaf_hash
from beacon.transparency.note import Signer
from beacon.verify import verify_receipt
from tests.portal.conftest import run_js
from tests.test_verify import tampered

ORIGIN = "beacon.test/log"
RUNNER = Ed25519Key.from_seed(bytes(range(32)))


def _receipt(n: int, key: Ed25519Key = RUNNER) -> dict[str, Any]:
    facts = ReceiptFacts(
        execution_id=f"ex_{n:04d}",
        job_id="job-portal",
        jobspec_hash="ab" * 32,
        benchmark="bias-detection",
        benchmark_version="1",
        question_id="math_basic",
        question_set_version="1",
        requested_region="EU",
        served_region="EU",
        model="smollm2-135m",
        model_digest="sha256:00",
        backend="llamacpp",
        backend_version="0.3",
        provider_id=None,
        provider_info=None,
        variant="neutral",
        system_prompt="s",
        prompt=f"What is {n} + {n}?",
        options={"max_tokens": 8, "temperature": 0.0},
        attempt=1,
        queued_at=1_700_000_000.0,
        started_at=1_700_000_001.0,
        ended_at=1_700_000_002.5 + n,
        tokens_in=12,
        tokens_out=4,
        backend_timings={"eval": 0.5},
        output=f"{2 * n} — é 😀",
        status="completed",
        error_code=None,
        error_message=None,
        worker_id="w1",
    )
    receipt = sign_document(build_receipt(facts, kid=key.kid, host={"cpu": "test", "cpu_count": 2}), key)
    verify_receipt(receipt, key.public_key_b64)  # what the runner issues is valid to begin with
    return receipt


@pytest.fixture(scope="module")
def logged() -> dict[str, Any]:
    """Seven receipts in an RFC 6962 tree, a signed checkpoint, and the API's proof body for each."""
    receipts = [_receipt(n) for n in range(7)]
    tree = InMemoryTree([leaf_hash(jcs(r)) for r in receipts])
    note = Checkpoint(ORIGIN, tree.size, tree.root()).sign(Signer(ORIGIN, RUNNER))
    proofs = [
        {
            "index": i,
            "size": tree.size,
            "leaf_hash": leaf_hash(jcs(r)).hex(),
            "proof": [h.hex() for h in tree.inclusion_proof(i)],
            "checkpoint": note,
        }
        for i, r in enumerate(receipts)
    ]
    return {"receipts": receipts, "proofs": proofs, "vkey": Signer(ORIGIN, RUNNER).verifier.vkey}


VERIFY = """
const v = await import('./js/verify.js');
try {
  await v.verifyReceipt(receipt, keys);
  const checkpoint = await v.verifyReceiptInclusion(receipt, proof, vkey, origin);
  return { ok: true, size: checkpoint.size };
} catch (e) { return { ok: false, error: e.message }; }
"""


def _verify(page: Page, logged: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    values = {
        "receipt": logged["receipts"][index],
        "keys": [RUNNER.public_key_b64],
        "proof": logged["proofs"][index],
        "vkey": logged["vkey"],
        "origin": ORIGIN,
        **changes,
    }
    result: dict[str, Any] = run_js(page, VERIFY, **values)
    return result


def test_every_logged_receipt_verifies_in_the_browser(modules: Page, logged: dict[str, Any]) -> None:
    for index in range(len(logged["receipts"])):
        assert _verify(modules, logged, index) == {"ok": True, "size": 7}, index


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("timings", "duration_s"), 0.001, "signature does not match"),
        (("region", "served"), "US", "signature does not match"),
        (("output", "text"), "5", "output.sha256 does not match"),
        (("attempt",), 2, "receipt_id does not match"),
        (("schema",), "beacon.receipt/v0", "unknown receipt schema"),
    ],
)
def test_a_tampered_receipt_fails_with_the_reason(
    modules: Page, logged: dict[str, Any], path: tuple[str, ...], value: Any, reason: str
) -> None:
    result = _verify(modules, logged, 3, receipt=tampered(logged["receipts"][3], path, value))
    assert result["ok"] is False and reason in result["error"]


def test_a_receipt_signed_by_another_key_is_not_the_runners(modules: Page, logged: dict[str, Any]) -> None:
    stranger = Ed25519Key.generate()
    forged = sign_document({k: v for k, v in logged["receipts"][0].items()}, stranger)
    result = _verify(modules, logged, 0, receipt=forged)
    assert result == {"ok": False, "error": "signed by a key that is not one of the runner's keys"}


def test_a_proof_that_does_not_lead_to_the_checkpoint_fails(modules: Page, logged: dict[str, Any]) -> None:
    proof = logged["proofs"][2]
    wrong_index = {**proof, "index": 3}
    assert "root hash" in _verify(modules, logged, 2, proof=wrong_index)["error"]
    flipped = {**proof, "proof": ["00" * 32, *proof["proof"][1:]]}
    assert "root hash" in _verify(modules, logged, 2, proof=flipped)["error"]
    short = {**proof, "proof": proof["proof"][:-1]}
    assert "shorter" in _verify(modules, logged, 2, proof=short)["error"]
    other_leaf = _verify(modules, logged, 2, proof=logged["proofs"][4])
    assert other_leaf["ok"] is False and "not this receipt" in other_leaf["error"]


def test_a_checkpoint_not_signed_by_the_log_key_or_from_another_log_fails(
    modules: Page, logged: dict[str, Any]
) -> None:
    proof = logged["proofs"][1]
    stranger = Signer(ORIGIN, Ed25519Key.generate())
    text = proof["checkpoint"].split("\n\n")[0] + "\n"
    by_stranger = {**proof, "checkpoint": Checkpoint.parse_text(text).sign(stranger)}
    assert "no signature by the log key" in _verify(modules, logged, 1, proof=by_stranger)["error"]
    lines = proof["checkpoint"].split("\n")
    lines[1] = "8"  # the size line: the log key's signature no longer covers the text
    assert (
        "invalid signature"
        in _verify(modules, logged, 1, proof={**proof, "checkpoint": "\n".join(lines)})["error"]
    )
    assert "from log beacon.test/log" in _verify(modules, logged, 1, origin="beacon.test/other")["error"]


def test_a_signed_difference_report_verifies_and_a_changed_one_does_not(modules: Page) -> None:
    report = sign_document(
        {
            "kind": "beacon.difference-report",
            "job_id": "job-portal",
            "regions": ["EU", "US"],
            "summary": "é 😀",
        },
        RUNNER,
    )
    body = """
    const v = await import('./js/verify.js');
    try { await v.verifyDocument(report, keys); return 'valid'; } catch (e) { return e.message; }
    """
    keys = [RUNNER.public_key_b64]
    assert run_js(modules, body, report=report, keys=keys) == "valid"
    assert (
        run_js(modules, body, report={**report, "regions": ["EU"]}, keys=keys)
        == "signature does not match the document"
    )
    assert "not one of the runner's keys" in run_js(
        modules, body, report=report, keys=[Ed25519Key.generate().public_key_b64]
    )
