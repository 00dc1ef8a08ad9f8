"""Job bundles: everything an auditor needs to check a finished job offline, stored by CID.

A bundle is one JSON document (RFC 8785 bytes, signed by the runner key like every Beacon
document)::

    {
      "format": "beacon.bundle/v1",
      "job_id": "...", "status": "completed",
      "jobspec": "<the signed JobSpec, verbatim>", "jobspec_sha256": "<hex of those bytes>",
      "receipts": [<receipt>, ...],                  # exactly the logged entries, in leaf order
      "proofs": ["c2sp.org/tlog-proof@v1\\n...", ...], # one per receipt, all bound to `checkpoint`
      "checkpoint": "<signed checkpoint note>",
      "log": {"origin": "...", "vkey": "..."},
      "diff": {"id", "leaf_index", "report", "proof"} | null,
      "public_key": "...", "signature": "..."
    }

Each tlog-proof carries the JobSpec hash in its ``extra`` line. The bundle's CID is what
``ipfs add --cid-version=1 --raw-leaves`` gives for its bytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.canonical import jcs, sha256_hex
from beacon.keys import b64encode
from beacon.runtime import Runtime
from beacon.signing import SignatureError, sign_document, signed_by, verify_document
from beacon.store.tables import diff_reports, executions, jobs
from beacon.transparency.checkpoint import CheckpointError, open_checkpoint
from beacon.transparency.ipfs import ContentStore
from beacon.transparency.log import Leaf, StoredCheckpoint, TransparencyLog
from beacon.transparency.note import Verifier
from beacon.transparency.proof import TlogProof, make_proof
from beacon.verify import VerificationError, verify_inclusion, verify_receipt
from beacon.worker.lifecycle import JOB_TERMINAL

log = logging.getLogger("beacon.transparency.bundle")

FORMAT = "beacon.bundle/v1"
MEDIA_TYPE = "application/json"


class BundleError(Exception):
    """A bundle cannot be built yet (e.g. a receipt not logged) or is malformed."""


def _entry_document(leaf: Leaf) -> dict[str, Any]:
    document = json.loads(leaf.entry)
    if not isinstance(document, dict) or jcs(document) != leaf.entry:
        raise BundleError(f"leaf {leaf.index} is not an RFC 8785 JSON object")
    return document


async def build_bundle(tlog: TransparencyLog, runtime: Runtime, job_id: str) -> dict[str, Any] | None:
    """The signed bundle of a terminal job, or None if the job is unknown or not terminal."""
    db = runtime.db
    async with db.connect() as conn:
        job = (
            await conn.execute(
                sa.select(jobs.c.id, jobs.c.status, jobs.c.raw, jobs.c.spec_hash).where(jobs.c.id == job_id)
            )
        ).first()
        if job is None or job.status not in JOB_TERMINAL:
            return None
        rows = (
            await conn.execute(
                sa.select(executions.c.id, executions.c.receipt_id, executions.c.leaf_index)
                .where(executions.c.job_id == job_id, executions.c.receipt.is_not(None))
                .order_by(executions.c.leaf_index, executions.c.id)
            )
        ).all()
        leaves: list[Leaf] = []
        for row in rows:
            leaf = None
            if row.leaf_index is not None:
                leaf = await tlog.leaf(conn, int(row.leaf_index))
            elif row.receipt_id:
                leaf = await tlog.leaf_by_ref(conn, str(row.receipt_id))
            if leaf is None:
                raise BundleError(f"the receipt of execution {row.id} is not in the transparency log yet")
            leaves.append(leaf)
        diff_row = (
            await conn.execute(
                sa.select(diff_reports.c.id, diff_reports.c.leaf_index, diff_reports.c.report).where(
                    diff_reports.c.job_id == job_id
                )
            )
        ).first()
        diff_leaf = None
        if diff_row is not None and diff_row.leaf_index is not None:
            diff_leaf = await tlog.leaf(conn, int(diff_row.leaf_index))
    leaves.sort(key=lambda leaf: leaf.index)
    indices = [leaf.index for leaf in leaves] + ([diff_leaf.index] if diff_leaf else [])
    checkpoint = await tlog.checkpoint_for(max(indices) if indices else None)
    extra = bytes.fromhex(job.spec_hash) if len(job.spec_hash) == 64 else None
    async with db.connect() as conn:
        proofs = [await _tlog_proof(tlog, conn, leaf.index, checkpoint, extra) for leaf in leaves]
        diff: dict[str, Any] | None = None
        if diff_row is not None:
            diff = {
                "id": diff_row.id,
                "leaf_index": diff_row.leaf_index,
                "report": diff_row.report,
                "proof": None,
            }
            if diff_leaf is not None:
                diff["report"] = _entry_document(diff_leaf)
                diff["proof"] = await _tlog_proof(tlog, conn, diff_leaf.index, checkpoint, extra)
    bundle = {
        "format": FORMAT,
        "job_id": job.id,
        "status": job.status,
        "jobspec": job.raw,
        "jobspec_sha256": job.spec_hash,
        "receipts": [_entry_document(leaf) for leaf in leaves],
        "proofs": proofs,
        "checkpoint": checkpoint.note,
        "log": {"origin": tlog.origin, "vkey": tlog.verifier.vkey},
        "diff": diff,
    }
    return sign_document(bundle, runtime.runner_key)


async def _tlog_proof(
    tlog: TransparencyLog,
    conn: AsyncConnection,
    index: int,
    checkpoint: StoredCheckpoint,
    extra: bytes | None,
) -> str:
    """The tlog-proof of leaf ``index`` bound to ``checkpoint``, carrying ``extra``."""
    return make_proof(index, await tlog.inclusion_proof(conn, index, checkpoint.size), checkpoint.note, extra)


def bundle_bytes(bundle: dict[str, Any]) -> bytes:
    """The stored form of a bundle: its RFC 8785 bytes."""
    return jcs(bundle)


async def finalize_job_bundle(runtime: Runtime, job_id: str) -> None:
    """Job finalizer (after the difference report): build, store and pin the job's bundle; record its CID on the job.

    Idempotent: a job that has a bundle keeps it; only a missing kubo pin is retried.
    """
    tlog, store = runtime.tlog, runtime.content
    async with runtime.db.connect() as conn:
        existing = await conn.scalar(sa.select(jobs.c.bundle_cid).where(jobs.c.id == job_id))
    if existing:
        info = await store.info(existing)
        if store.kubo is not None and info is not None and not info["pinned_remote"]:
            await store.pin_remote(existing)
        return
    bundle = await build_bundle(tlog, runtime, job_id)
    if bundle is None:
        return
    await store_bundle(runtime, store, job_id, bundle)


async def store_bundle(runtime: Runtime, store: ContentStore, job_id: str, bundle: dict[str, Any]) -> str:
    """Store the bundle by CID and write the CID on the job (the first bundle stays); pin it in kubo."""
    data = bundle_bytes(bundle)
    async with runtime.db.begin() as conn:
        cid = await store.put_local(conn, data, MEDIA_TYPE)
        await conn.execute(
            sa.update(jobs).where(jobs.c.id == job_id, jobs.c.bundle_cid.is_(None)).values(bundle_cid=cid)
        )
        recorded = await conn.scalar(sa.select(jobs.c.bundle_cid).where(jobs.c.id == job_id))
    if store.kubo is not None and recorded == cid:
        await store.pin_remote(cid, data)
    log.info(
        "job bundle stored", extra={"job_id": job_id, "cid": recorded, "receipts": len(bundle["receipts"])}
    )
    return str(recorded)


# --- verification (offline) ---------------------------------------------------------------------------


@dataclass
class BundleReport:
    """The checks made on a bundle, each ``(name, passed, detail)``."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append((name, passed, detail))
        return passed

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.ok,
            "checks": [
                {"check": name, "passed": passed, "detail": detail} for name, passed, detail in self.checks
            ],
        }


def verify_bundle(
    bundle: Any,
    *,
    runner_public_key: bytes | Sequence[bytes] | None = None,
    vkeys: list[Verifier] | None = None,
) -> BundleReport:
    """Check a bundle without contacting anyone: signatures, JobSpec hash, proofs, one checkpoint.

    ``runner_public_key``: the pinned runner key(s) (current and rotated); the bundle and every document
    in it must be signed by one. The log key comes from ``vkeys`` or from the runner key (the runner
    signs its log). Without keys, the bundle's own claims are used and the report says so.
    """
    report = BundleReport()
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        report.add("format", False, f"not a {FORMAT} document")
        return report
    report.add("format", True, FORMAT)
    pinned = [runner_public_key] if isinstance(runner_public_key, bytes) else list(runner_public_key or [])
    own_key = bundle.get("public_key")
    signers = [b64encode(key) for key in pinned] or ([own_key] if isinstance(own_key, str) else [])
    try:
        signed_by(bundle, signers) if signers else verify_document(bundle)
        report.add(
            "bundle signature",
            True,
            "runner key" if pinned else "its own embedded key only (pass the runner key to pin it)",
        )
    except SignatureError as exc:
        report.add("bundle signature", False, str(exc))
    jobspec = bundle.get("jobspec")
    if isinstance(jobspec, str):
        digest = sha256_hex(jobspec.encode("utf-8"))
        report.add("jobspec hash", digest == bundle.get("jobspec_sha256"), digest)
    else:
        report.add("jobspec hash", False, "no verbatim jobspec")
    origin = (bundle.get("log") or {}).get("origin")
    verifiers = list(vkeys or [])
    if not verifiers and pinned and isinstance(origin, str):
        verifiers = [Verifier(origin, key) for key in pinned]
    if not verifiers:
        try:
            verifiers = [Verifier.parse(str((bundle.get("log") or {}).get("vkey", "")))]
            report.add("log key", True, "taken from the bundle itself: pass --vkey or --runner-key to pin it")
        except ValueError as exc:
            report.add("log key", False, str(exc))
            return report
    checkpoint_note = bundle.get("checkpoint")
    try:
        signed = open_checkpoint(str(checkpoint_note), verifiers, origin if isinstance(origin, str) else None)
        report.add(
            "checkpoint signature", True, f"size {signed.size}, signed by {', '.join(signed.verified_by)}"
        )
    except CheckpointError as exc:
        report.add("checkpoint signature", False, str(exc))
    receipts, proofs = bundle.get("receipts"), bundle.get("proofs")
    if not isinstance(receipts, list) or not isinstance(proofs, list) or len(receipts) != len(proofs):
        report.add("receipts", False, "receipts and proofs must be lists of the same length")
        return report
    # Each document is checked as beacon.verify checks a receipt (its id, output hash and signature by
    # the runner key), not only its signature: the bundle signature covers them, but each must also stand
    # on its own. Its inclusion is a check of its own, so that the report names every failure.
    items: list[tuple[str, Any, Any]] = [
        (f"receipt {i}", r, p) for i, (r, p) in enumerate(zip(receipts, proofs, strict=True))
    ]
    diff = bundle.get("diff")
    if isinstance(diff, dict) and diff.get("proof") is not None:
        items.append(("diff report", diff.get("report"), diff.get("proof")))
    for name, document, proof_text in items:
        _verify_item(report, name, document, proof_text, signers, verifiers, checkpoint_note, bundle)
    return report


def _verify_item(
    report: BundleReport,
    name: str,
    document: Any,
    proof_text: Any,
    signers: list[str],
    verifiers: list[Verifier],
    checkpoint_note: Any,
    bundle: dict[str, Any],
) -> None:
    if not isinstance(document, dict):
        report.add(name, False, "not a JSON object")
        return
    try:
        verified = verify_receipt(document, signers)
        report.add(f"{name} signature", True, f"key {verified.signed_by}")
    except VerificationError as exc:
        report.add(f"{name} signature", False, str(exc))
    if "job_id" in document and document["job_id"] != bundle.get("job_id"):
        report.add(f"{name} job", False, f"belongs to job {document['job_id']!r}")
    if "jobspec_hash" in document and document["jobspec_hash"] != bundle.get("jobspec_sha256"):
        report.add(f"{name} jobspec", False, "was issued for another JobSpec than the bundle's")
    try:
        proof = TlogProof.parse(str(proof_text))
        if proof.checkpoint_note != checkpoint_note:
            report.add(f"{name} proof", False, "bound to another checkpoint than the bundle's")
            return
        verify_inclusion(jcs(document), proof, verifiers)
        report.add(f"{name} inclusion", True, f"leaf {proof.index}")
    except VerificationError as exc:
        report.add(f"{name} inclusion", False, str(exc))
