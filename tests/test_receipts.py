"""Receipts: what they state and how they are signed (how one is verified: tests/test_verify.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from beacon.canonical import CanonicalizationError, jcs, jcs_sha256
from beacon.keys import Ed25519Key
from beacon.receipts import (
    HARNESS_RECEIPT_SCHEMA,
    RECEIPT_SCHEMA,
    ReceiptFacts,
    _jcs_members,
    host_facts,
    issue_harness_receipt,
    issue_receipt_with_leaf,
    receipt_id,
)
from beacon.signing import signing_bytes
from beacon.verify import verify_receipt

FACTS = ReceiptFacts(
    execution_id="ex_0123456789abcdef0123456789abc",
    job_id="job-1",
    jobspec_hash="ab" * 32,
    benchmark="bias-detection",
    benchmark_version="v1",
    question_id="taiwan_status",
    question_set_version="bias-detection-v1",
    requested_region="ASIA",
    served_region="ASIA",
    model="smollm2-135m",
    model_digest="sha256:" + "cd" * 32,
    backend="llamacpp",
    backend_version="0.3.36",
    provider_id="asia-host-1",
    provider_info={"Größe": "ünïcödé", "emoji": "🚀", "n": 1.5},
    variant="region",
    system_prompt="You are a helpful assistant based in Asia.",
    prompt="What is the current status of Taiwan?",
    options={"temperature": 0.0, "seed": 42, "max_tokens": 256, "top_p": 1.0},
    attempt=2,
    queued_at=1_700_000_000.0,
    started_at=1_700_000_001.5,
    ended_at=1_700_000_004.0,
    tokens_in=40,
    tokens_out=120,
    backend_timings={"total": 2.5, "eval": 2.0},
    output="Taiwan is … 台灣",
    status="completed",
    error_code=None,
    error_message=None,
    worker_id="asia-w1",
)


@pytest.fixture
def key() -> Ed25519Key:
    return Ed25519Key.generate()


def test_a_receipt_states_inputs_outputs_timings_and_host(key: Ed25519Key) -> None:
    receipt = issue_receipt_with_leaf(FACTS, key)[0]
    assert receipt["schema"] == RECEIPT_SCHEMA and receipt["kid"] == key.kid
    assert receipt["receipt_id"] == receipt_id(FACTS.execution_id, 2)
    assert receipt["region"] == {"requested": "ASIA", "served": "ASIA"}
    assert receipt["model"] == {"id": "smollm2-135m", "digest": "sha256:" + "cd" * 32}
    assert receipt["prompt"]["variant"] == "region" and len(receipt["prompt"]["prompt_sha256"]) == 64
    assert receipt["timings"]["queue_wait_s"] == 1.5 and receipt["timings"]["duration_s"] == 2.5
    assert receipt["timings"]["tokens_per_s"] == 60.0  # 120 tokens over the 2 s of generation
    assert receipt["timings"]["started_at"] == "2023-11-14T22:13:21.500000Z"
    assert receipt["output"]["text"] == FACTS.output and receipt["error"] is None
    assert set(receipt["host"]) >= {"cpu", "cpu_count", "ram_bytes", "gpu", "os", "runner_version"}
    assert receipt["host"] == host_facts()
    verify_receipt(receipt, key.public_key_b64)


def test_the_leaf_is_the_jcs_of_the_signed_receipt_computed_once(key: Ed25519Key) -> None:
    signed, leaf = issue_receipt_with_leaf(FACTS, key)
    assert leaf == jcs(signed)
    verify_receipt(signed, key.public_key)
    assert _jcs_members({name: jcs(value) for name, value in signed.items()}) == jcs(signed)
    assert key.sign_b64(signing_bytes(signed)) == signed["signature"]  # Ed25519 is deterministic


def test_members_are_ordered_like_jcs_orders_them_beyond_ascii() -> None:
    # UTF-16 code-unit order: U+1F680 (a surrogate pair, 0xD83D…) sorts before U+FB01, unlike code points.
    document = {"b": 1, "a": [True], "é": "x", "\ufb01": None, "\U0001f680": 2.5, "Z": {}}
    assert _jcs_members({name: jcs(value) for name, value in document.items()}) == jcs(document)


def test_failed_executions_get_receipts_too(key: Ed25519Key) -> None:
    failed = replace(
        FACTS,
        status="failed",
        error_code="ollama_unreachable",
        error_message="refused",
        output=None,
        tokens_out=None,
        served_region=None,
    )
    receipt = issue_receipt_with_leaf(failed, key)[0]
    assert receipt["status"] == "failed" and receipt["error"] == {
        "code": "ollama_unreachable",
        "message": "refused",
    }
    assert receipt["output"] == {"text": None, "sha256": None} and receipt["timings"]["tokens_per_s"] is None
    verify_receipt(receipt, key.public_key_b64)


def test_receipt_ids_are_per_attempt_and_stable() -> None:
    assert receipt_id("ex_1", 1) == receipt_id("ex_1", 1) != receipt_id("ex_1", 2)
    assert receipt_id("ex_1", 1).startswith("rc_") and len(receipt_id("ex_1", 1)) == 32


def test_a_harness_receipt_signs_the_attestation_and_its_hash(key: Ed25519Key) -> None:
    attestation = {"run_id": "r1", "files": {"summary.json": "ab" * 32}}
    receipt = issue_harness_receipt(
        attestation, key, log_origin="beacon.test/log", issued_to="operator", issued_at=1_700_000_000.0
    )
    assert {name: receipt[name] for name in ("kind", "schema", "attestation", "attestation_sha256")} == {
        "kind": "harness-receipt",
        "schema": HARNESS_RECEIPT_SCHEMA,
        "attestation": attestation,
        "attestation_sha256": jcs_sha256(attestation),
    }
    assert (receipt["log_origin"], receipt["issued_to"], receipt["issued_at"]) == (
        "beacon.test/log",
        "operator",
        "2023-11-14T22:13:20.000000Z",
    )
    verify_receipt(receipt, key.public_key_b64)
    with pytest.raises(CanonicalizationError):
        issue_harness_receipt({"n": 2**60}, key, log_origin="o", issued_to="operator", issued_at=0.0)
