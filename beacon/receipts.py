"""Execution receipts: what ran, where, on what, with which inputs, and what came out — signed.

Every execution that reaches a terminal state gets exactly one receipt, failed, cancelled and timed
out ones included. A receipt is a JSON document signed by the runner's Ed25519 key over its RFC 8785
bytes (``beacon.signing``, decision 0004); its transparency-log leaf is the JCS bytes of the signed
document. An auditor verifies one offline with :func:`beacon.verify.verify_receipt` and the key from
``GET /api/v1/keys`` (``beacon verify-receipt FILE --runner-key …``).

The receipt id is derived from (execution id, attempt), so the one attempt that ends an execution
has one id, and appending it to the log twice is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from beacon import __version__
from beacon.canonical import jcs, jcs_sha256, sha256_hex
from beacon.clock import iso_time
from beacon.keys import Ed25519Key
from beacon.signing import sign_document

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from beacon.transparency.log import TransparencyLog

RECEIPT_SCHEMA = "beacon.receipt/v1"
HARNESS_RECEIPT_SCHEMA = "beacon.harness-receipt/v1"
"""What ``POST /api/v1/transparency/attestations`` signs and logs: a harness run's attestation."""
HARNESS_RECEIPT_KIND = "harness-receipt"
"""The ``kind`` of a harness receipt and of its log leaf."""

REQUIRED_FIELDS = (
    "schema",
    "receipt_id",
    "execution_id",
    "job_id",
    "jobspec_hash",
    "region",
    "backend",
    "model",
    "question",
    "prompt",
    "options",
    "attempt",
    "timings",
    "output",
    "status",
    "host",
    "kid",
    "issued_at",
)


def receipt_id(execution_id: str, attempt: int) -> str:
    """The id of the receipt that ends ``execution_id`` at ``attempt`` (deterministic)."""
    digest = hashlib.sha256(f"{execution_id}\x1f{attempt}".encode()).hexdigest()
    return "rc_" + digest[:29]


def _round(value: float | None, places: int = 6) -> float | None:
    return None if value is None else round(float(value), places)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@cache
def host_facts() -> dict[str, Any]:
    """Facts about the machine that ran the execution (read once per process)."""
    import psutil

    gpus: list[dict[str, Any]] = []
    try:
        from beacon.gpu import gpu_status

        status = gpu_status()
        gpus = [
            {"name": device.name, "memory_mib": round(device.memory_total_mib)} for device in status.devices
        ]
        driver = status.driver_version
    except Exception:  # GPU probing must never stop a receipt
        driver = None
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "ram_bytes": int(psutil.virtual_memory().total),
        "gpu": gpus or None,
        "gpu_driver": driver if gpus else None,
        "os": platform.platform(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "runner_version": __version__,
    }


@dataclass(frozen=True)
class ReceiptFacts:
    """Everything a receipt states, gathered by the worker (or the sweeper, or a cancel)."""

    execution_id: str
    job_id: str
    jobspec_hash: str
    benchmark: str
    benchmark_version: str | None
    question_id: str
    question_set_version: str | None
    requested_region: str
    served_region: str | None
    model: str
    model_digest: str | None
    backend: str | None
    backend_version: str | None
    provider_id: str | None
    provider_info: dict[str, Any] | None
    variant: str
    system_prompt: str | None
    prompt: str | None
    options: dict[str, Any]
    attempt: int
    queued_at: float | None
    started_at: float | None
    ended_at: float
    tokens_in: int | None
    tokens_out: int | None
    backend_timings: dict[str, float] | None
    output: str | None
    status: str
    error_code: str | None
    error_message: str | None
    worker_id: str | None


def build_receipt(facts: ReceiptFacts, *, kid: str, host: dict[str, Any] | None = None) -> dict[str, Any]:
    """The unsigned receipt document for ``facts``."""
    duration = facts.ended_at - facts.started_at if facts.started_at is not None else None
    eval_s = (facts.backend_timings or {}).get("eval") or duration
    tokens_per_s = facts.tokens_out / eval_s if facts.tokens_out and eval_s and eval_s > 0 else None
    output = facts.output
    return {
        "schema": RECEIPT_SCHEMA,
        "receipt_id": receipt_id(facts.execution_id, facts.attempt),
        "execution_id": facts.execution_id,
        "job_id": facts.job_id,
        "jobspec_hash": facts.jobspec_hash,
        "benchmark": {"name": facts.benchmark, "version": facts.benchmark_version},
        "question": {"id": facts.question_id, "set_version": facts.question_set_version},
        "region": {"requested": facts.requested_region, "served": facts.served_region},
        "provider": {"id": facts.provider_id, "info": facts.provider_info or {}},
        "backend": {"name": facts.backend, "version": facts.backend_version},
        "model": {"id": facts.model, "digest": facts.model_digest},
        "prompt": {
            "variant": facts.variant,
            "system_prompt_sha256": sha256_hex(facts.system_prompt.encode())
            if facts.system_prompt is not None
            else None,
            "prompt_sha256": sha256_hex(facts.prompt.encode()) if facts.prompt is not None else None,
        },
        "options": dict(facts.options),
        "attempt": facts.attempt,
        "timings": {
            "queued_at": iso_time(facts.queued_at),
            "started_at": iso_time(facts.started_at),
            "ended_at": iso_time(facts.ended_at),
            "queue_wait_s": _round(facts.started_at - facts.queued_at)
            if facts.started_at is not None and facts.queued_at is not None
            else None,
            "duration_s": _round(duration),
            "tokens_per_s": _round(tokens_per_s, 3),
            "backend": {key: _round(value) for key, value in sorted((facts.backend_timings or {}).items())},
        },
        "tokens": {"in": facts.tokens_in, "out": facts.tokens_out},
        "output": {
            "text": output,
            "sha256": sha256_hex(output.encode()) if output is not None else None,
        },
        "status": facts.status,
        "error": {"code": facts.error_code, "message": facts.error_message} if facts.error_code else None,
        "worker": {"id": facts.worker_id},
        "host": host if host is not None else host_facts(),
        "kid": kid,
        "issued_at": iso_time(facts.ended_at),
    }


@cache
def _member_name(name: str) -> bytes:
    """``"name":`` in RFC 8785 form. A receipt's member names are a fixed few: each is encoded once."""
    return jcs(name) + b":"


@cache
def _host_facts_jcs() -> bytes:
    """The RFC 8785 bytes of :func:`host_facts` (the same object in every receipt of this process)."""
    return jcs(host_facts())


def _jcs_members(members: dict[str, bytes]) -> bytes:
    """The RFC 8785 bytes of an object from its members' canonical bytes (§3.2.3: names in UTF-16 order,
    which is plain string order for ASCII names, as a receipt's are)."""
    names = list(members)
    if "".join(names).isascii():
        names.sort()
    else:
        names.sort(key=lambda name: name.encode("utf-16-be"))
    return b"{" + b",".join(_member_name(name) + members[name] for name in names) + b"}"


def issue_receipt_with_leaf(facts: ReceiptFacts, key: Ed25519Key) -> tuple[dict[str, Any], bytes]:
    """The signed receipt and its log leaf (the JCS bytes of the signed receipt), canonicalising
    each member once: the bytes signed and the leaf differ only by the two signature members."""
    body = build_receipt(facts, kid=key.kid)
    members = {name: jcs(value) for name, value in body.items() if name != "host"}
    members["host"] = _host_facts_jcs()  # build_receipt put host_facts() there
    signature = key.sign_b64(_jcs_members(members))
    signed = {**body, "public_key": key.public_key_b64, "signature": signature}
    leaf = _jcs_members({**members, "public_key": jcs(key.public_key_b64), "signature": jcs(signature)})
    return signed, leaf


def issue_harness_receipt(
    attestation: dict[str, Any], key: Ed25519Key, *, log_origin: str, issued_to: str, issued_at: float
) -> dict[str, Any]:
    """Sign the harness receipt of ``attestation`` (decision 0047).

    Raises CanonicalizationError when the attestation has no RFC 8785 form.
    """
    return sign_document(
        {
            "kind": HARNESS_RECEIPT_KIND,
            "schema": HARNESS_RECEIPT_SCHEMA,
            "attestation": attestation,
            "attestation_sha256": jcs_sha256(attestation),
            "log_origin": log_origin,
            "issued_at": iso_time(issued_at),
            "issued_to": issued_to,
        },
        key,
    )


async def log_harness_receipt(
    conn: AsyncConnection, tlog: TransparencyLog, receipt: dict[str, Any]
) -> tuple[int, dict[str, Any], bool]:
    """Append a harness receipt inside the caller's transaction, once per attestation.

    Returns (leaf index, the receipt in the log, whether it was appended now): an attestation logged
    before keeps its leaf and its first receipt.
    """
    ref = f"{HARNESS_RECEIPT_KIND}:{receipt['attestation_sha256']}"
    existing = await tlog.leaf_by_ref(conn, ref)
    if existing is not None:
        return existing.index, orjson.loads(existing.entry), False
    return await tlog.append(conn, kind=HARNESS_RECEIPT_KIND, ref=ref, entry=jcs(receipt)), receipt, True
