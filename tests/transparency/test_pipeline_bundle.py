"""End to end through the real pipeline: a signed job runs on region workers, its receipts land in the
log, the bundle finalizer stores the job's bundle by CID, and the bundle verifies offline."""

from __future__ import annotations

import json

import sqlalchemy as sa

from beacon.runtime import Runtime
from beacon.store.tables import executions, jobs
from beacon.transparency.bundle import verify_bundle
from beacon.transparency.cid import compute_cid
from tests.pipeline_support import Submitter, wait_for_jobs, wait_until
from tests.worker.conftest import make_worker, running, runtime, submitter, worker_settings

__all__ = ["runtime", "submitter", "worker_settings"]  # fixtures shared with the worker tests


async def test_completed_job_gets_a_verifiable_bundle(runtime: Runtime, submitter: Submitter) -> None:
    workers = [make_worker(runtime, region) for region in ("US", "EU")]
    async with running(runtime, *workers):
        job_id = await submitter.submit(runtime, "bundle-e2e", regions=["US", "EU"], models=["m1"])
        assert (await wait_for_jobs(runtime.db, [job_id], timeout_s=60)) == {job_id: "completed"}

        async def bundle_cid() -> str | None:
            async with runtime.db.connect() as conn:
                value = await conn.scalar(sa.select(jobs.c.bundle_cid).where(jobs.c.id == job_id))
            return str(value) if value else None

        async def has_bundle() -> bool:
            return await bundle_cid() is not None

        await wait_until(has_bundle, timeout_s=30, what="the job's bundle CID")
    cid = await bundle_cid()
    assert cid is not None
    data = await runtime.content.get(cid)
    assert compute_cid(data) == cid
    bundle = json.loads(data)
    async with runtime.db.connect() as conn:
        receipts = [
            r.receipt
            for r in await conn.execute(sa.select(executions.c.receipt).where(executions.c.job_id == job_id))
        ]
    assert len(bundle["receipts"]) == len(receipts) > 0
    assert {r["receipt_id"] for r in bundle["receipts"]} == {r["receipt_id"] for r in receipts}
    report = verify_bundle(bundle, runner_public_key=runtime.runner_key.public_key)
    assert report.ok, report.as_dict()
