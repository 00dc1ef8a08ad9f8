"""Job bundles: built by the finalizer from logged receipts, stored by CID, verifiable offline."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.boot import open_runtime
from beacon.canonical import jcs
from beacon.keys import Ed25519Key
from beacon.receipts import ReceiptFacts, issue_receipt_with_leaf
from beacon.runtime import Runtime
from beacon.signing import sign_document
from beacon.standins.kubo import KuboStandIn, serve
from beacon.store.db import now
from beacon.store.tables import diff_reports, executions, jobs
from beacon.transparency.bundle import BundleError, finalize_job_bundle, verify_bundle
from beacon.transparency.cid import compute_cid

JOBSPEC = '{"id":"job-1","version":"1.0","benchmark":"noop","signature":"…"}'


@pytest.fixture
async def runtime(database_url: str, make_settings: Callable[..., Any]) -> AsyncIterator[Runtime]:
    async with open_runtime(make_settings(database_url=database_url, checkpoint_interval_s=3600)) as rt:
        yield rt


def receipt_facts(i: int) -> ReceiptFacts:
    return ReceiptFacts(
        execution_id=f"exec-{i}",
        job_id="job-1",
        jobspec_hash=hashlib.sha256(JOBSPEC.encode()).hexdigest(),
        benchmark="noop",
        benchmark_version=None,
        question_id=f"q{i}",
        question_set_version=None,
        requested_region=["US", "EU"][i % 2],
        served_region=["US", "EU"][i % 2],
        model="m",
        model_digest=None,
        backend=None,
        backend_version=None,
        provider_id="local",
        provider_info=None,
        variant="neutral",
        system_prompt=None,
        prompt=None,
        options={},
        attempt=1,
        queued_at=1.0,
        started_at=2.0,
        ended_at=3.0,
        tokens_in=None,
        tokens_out=None,
        backend_timings=None,
        output=f"answer {i}",
        status="completed",
        error_code=None,
        error_message=None,
        worker_id=None,
    )


async def make_job(
    runtime: Runtime, *, status: str = "completed", executions_n: int = 3, logged: bool = True
) -> str:
    """A terminal job whose executions have signed, logged receipts (as the pipeline writes them: signed
    by the runner key)."""
    worker_key = runtime.runner_key
    t = now()
    async with runtime.db.begin() as conn:
        await conn.execute(
            sa.insert(jobs).values(
                id="job-1",
                status=status,
                benchmark="noop",
                spec={},
                raw=JOBSPEC,
                spec_hash=hashlib.sha256(JOBSPEC.encode()).hexdigest(),
                signature_scheme="jcs",
                public_key="k",
                regions=["US", "EU"],
                created_at=t,
                updated_at=t,
            )
        )
        for i in range(executions_n):
            receipt = issue_receipt_with_leaf(receipt_facts(i), worker_key)[0]
            index = None
            if logged:
                index = await runtime.tlog.append(
                    conn, kind="receipt", ref=receipt["receipt_id"], entry=jcs(receipt)
                )
            await conn.execute(
                sa.insert(executions).values(
                    id=f"exec-{i}",
                    job_id="job-1",
                    region=["US", "EU"][i % 2],
                    model="m",
                    question_id=f"q{i}",
                    status="completed",
                    receipt_id=receipt["receipt_id"],
                    receipt=receipt,
                    leaf_index=index,
                    created_at=t,
                    updated_at=t,
                )
            )
    return "job-1"


async def stored_bundle(runtime: Runtime, job_id: str) -> tuple[str, dict[str, Any]]:
    async with runtime.db.connect() as conn:
        cid = await conn.scalar(sa.select(jobs.c.bundle_cid).where(jobs.c.id == job_id))
    assert cid, "no bundle CID on the job"
    data = await runtime.content.get(cid)
    assert compute_cid(data) == cid
    return cid, json.loads(data)


async def test_finalizer_builds_a_verifiable_bundle(runtime: Runtime) -> None:
    job_id = await make_job(runtime)
    await finalize_job_bundle(runtime, job_id)
    cid, bundle = await stored_bundle(runtime, job_id)
    assert bundle["jobspec"] == JOBSPEC and len(bundle["receipts"]) == 3 == len(bundle["proofs"])
    assert {p.split("\n\n", 1)[1] for p in bundle["proofs"]} == {bundle["checkpoint"]}
    report = verify_bundle(bundle, runner_public_key=runtime.runner_key.public_key)
    assert report.ok, report.as_dict()
    # Idempotent: running the finalizer again keeps the first bundle.
    async with runtime.db.begin() as conn:
        await runtime.tlog.append(conn, kind="receipt", ref="unrelated", entry=b"{}")
    await finalize_job_bundle(runtime, job_id)
    assert (await stored_bundle(runtime, job_id))[0] == cid


async def test_bundle_includes_the_diff_report_and_its_proof(runtime: Runtime) -> None:
    job_id = await make_job(runtime)
    report_doc = sign_document(
        {"id": "diff-1", "job_id": job_id, "summary": "no differences"}, runtime.runner_key
    )
    async with runtime.db.begin() as conn:
        index = await runtime.tlog.append(conn, kind="diff-report", ref="diff-1", entry=jcs(report_doc))
        await conn.execute(
            sa.insert(diff_reports).values(
                id="diff-1",
                job_id=job_id,
                status="completed",
                regions=["US", "EU"],
                analysis_type="cross-region",
                report=report_doc,
                leaf_index=index,
                created_at=now(),
            )
        )
    await finalize_job_bundle(runtime, job_id)
    _, bundle = await stored_bundle(runtime, job_id)
    assert bundle["diff"]["id"] == "diff-1" and bundle["diff"]["leaf_index"] == index
    report = verify_bundle(bundle, runner_public_key=runtime.runner_key.public_key)
    assert report.ok and any(name == "diff report inclusion" for name, _, _ in report.checks)


async def test_no_bundle_before_the_job_is_terminal_or_its_receipts_are_logged(runtime: Runtime) -> None:
    await make_job(runtime, status="executing")
    await finalize_job_bundle(runtime, "job-1")
    async with runtime.db.connect() as conn:
        assert await conn.scalar(sa.select(jobs.c.bundle_cid)) is None
    async with runtime.db.begin() as conn:
        await conn.execute(sa.update(jobs).values(status="completed"))
        await conn.execute(
            sa.update(executions)
            .where(executions.c.id == "exec-1")
            .values(leaf_index=None, receipt_id="missing")
        )
    with pytest.raises(BundleError, match="not in the transparency log"):
        await finalize_job_bundle(runtime, "job-1")


async def test_tampering_is_detected_offline(runtime: Runtime) -> None:
    job_id = await make_job(runtime)
    await finalize_job_bundle(runtime, job_id)
    _, bundle = await stored_bundle(runtime, job_id)
    key = runtime.runner_key.public_key

    def failed(b: dict[str, Any], **kwargs: Any) -> set[str]:
        return {name for name, ok, _ in verify_bundle(b, **kwargs).checks if not ok}

    changed = copy.deepcopy(bundle)
    changed["receipts"][1]["status"] = "failed"
    assert {"bundle signature", "receipt 1 signature", "receipt 1 inclusion"} <= failed(
        changed, runner_public_key=key
    )
    # A receipt that verifies under its own key but whose id is not its execution's is refused too.
    forged = copy.deepcopy(bundle)
    forged["receipts"][0] = sign_document(
        {**forged["receipts"][0], "receipt_id": "rc_forged"}, Ed25519Key.generate()
    )
    assert "receipt 0 signature" in failed(forged)
    # An intact receipt signed by a key that is not the pinned runner key's is refused (beacon.verify).
    foreign = copy.deepcopy(bundle)
    foreign["receipts"][2] = sign_document(foreign["receipts"][2], Ed25519Key.generate())
    assert "receipt 2 signature" in failed(foreign, runner_public_key=key)
    swapped = copy.deepcopy(bundle)
    swapped["proofs"].reverse()
    assert "receipt 0 inclusion" in failed(swapped)
    assert "bundle signature" in failed(bundle, runner_public_key=Ed25519Key.generate().public_key)
    spec = copy.deepcopy(bundle)
    spec["jobspec"] += " "
    assert "jobspec hash" in failed(spec)
    # Without a pinned key the report says the log key came from the bundle itself.
    assert any("bundle itself" in detail for _, _, detail in verify_bundle(bundle).checks)


async def test_bundle_is_pinned_in_kubo_with_the_same_cid(
    database_url: str, make_settings: Callable[..., Any]
) -> None:
    standin = KuboStandIn()
    async with (
        serve(standin) as (_, url),
        open_runtime(
            make_settings(database_url=database_url, ipfs_url=url, checkpoint_interval_s=3600)
        ) as rt,
    ):
        job_id = await make_job(rt)
        await finalize_job_bundle(rt, job_id)
        cid, _ = await stored_bundle(rt, job_id)
        assert cid in standin.pins
        assert (await rt.content.info(cid))["pinned_remote"] is True  # type: ignore[index]
