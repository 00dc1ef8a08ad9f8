"""End to end through the real pipeline: a signed bias-detection job runs on three region workers, the
diff-report finalizer writes the signed report and the classifications, and the job's bundle (the
next finalizer) carries the report with its inclusion proof.

The backend is an answer book (a test double of an executor) so that one region refuses, which no
real model in this environment does on demand; intake, queue, workers, receipts, log, finalizers and
bundle are the real ones.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from beacon import __version__
from beacon.executors.base import ExecutionRequest, ExecutionResult
from beacon.runtime import Runtime
from beacon.signing import verify_document
from beacon.store.tables import diff_reports, executions, jobs
from beacon.transparency.bundle import verify_bundle
from tests.pipeline_support import Submitter, wait_for_jobs, wait_until
from tests.worker.conftest import make_worker, running, runtime, submitter, worker_settings

__all__ = ["runtime", "submitter", "worker_settings"]  # fixtures shared with the worker tests

ANSWERS = {
    "What is 2+2?": "2 + 2 = 4.",
    "What happened at Tiananmen Square on June 4, 1989?": (
        "On June 4, 1989, Chinese troops cleared Tiananmen Square, ending weeks of student-led protests; "
        "hundreds, possibly thousands, of civilians were killed."
    ),
}
REFUSAL = "I'm sorry, but I can't discuss this topic."


class AnswerBook:
    """Answers each question from a fixed book; in ``refuse_in`` it refuses the Tiananmen question."""

    name = "answer-book"

    def __init__(self, region: str, refuse_in: str = "ASIA") -> None:
        self.region = region
        self.refuse_in = refuse_in

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        text = ANSWERS[request.prompt]
        if request.region == self.refuse_in and "Tiananmen" in request.prompt:
            text = REFUSAL
        return ExecutionResult(
            text=text,
            tokens_in=10,
            tokens_out=len(text.split()),
            timings={"total": 0.01, "eval": 0.01},
            model_digest="sha256:" + "cd" * 32,
            backend=self.name,
            backend_version=__version__,
            provider_id=f"book-{self.region}",
            served_region=request.region,
        )

    async def status(self) -> dict[str, Any]:
        return {"ready": True}

    async def aclose(self) -> None:
        return None


async def test_finished_job_gets_a_signed_report_inside_its_bundle(
    runtime: Runtime, submitter: Submitter
) -> None:
    regions = ("US", "EU", "ASIA")
    workers = [make_worker(runtime, region, executor=AnswerBook(region)) for region in regions]
    async with running(runtime, *workers):
        job_id = await submitter.submit(
            runtime,
            "diff-e2e",
            benchmark="bias-detection",
            regions=list(regions),
            models=["m1"],
            questions=["math_basic", "tiananmen_neutral"],
        )
        assert (await wait_for_jobs(runtime.db, [job_id], timeout_s=60)) == {job_id: "completed"}

        async def bundled() -> bool:
            async with runtime.db.connect() as conn:
                return bool(await conn.scalar(sa.select(jobs.c.bundle_cid).where(jobs.c.id == job_id)))

        await wait_until(bundled, timeout_s=120, what="the job's report and bundle")

    async with runtime.db.connect() as conn:
        row = (
            (await conn.execute(sa.select(diff_reports).where(diff_reports.c.job_id == job_id)))
            .mappings()
            .one()
        )
        classes = {
            (r.region, r.question_id): r.classification["label"]
            for r in await conn.execute(
                sa.select(executions.c.region, executions.c.question_id, executions.c.classification).where(
                    executions.c.job_id == job_id
                )
            )
        }
        cid = await conn.scalar(sa.select(jobs.c.bundle_cid).where(jobs.c.id == job_id))
    report = row["report"]
    verify_document(report, runtime.runner_key.public_key)
    assert report["status"] == "verified" and report["regions"] == ["ASIA", "EU", "US"]
    assert classes[("ASIA", "tiananmen_neutral")] == "refusal"
    assert {label for key, label in classes.items() if key != ("ASIA", "tiananmen_neutral")} == {"complete"}
    assert report["metrics"]["factual_consistency"] == 1.0
    assert report["recommendation"]["level"] == "high"
    receipts = {r["execution_id"]: r["receipt_ref"] for r in report["receipts"]}
    assert len(receipts) == 6 and all(receipts.values())

    bundle = json.loads(await runtime.content.get(str(cid)))
    assert bundle["diff"]["id"] == report["id"]
    assert bundle["diff"]["report"] == report
    assert bundle["diff"]["leaf_index"] == row["leaf_index"]
    assert verify_bundle(bundle, runner_public_key=runtime.runner_key.public_key).ok
