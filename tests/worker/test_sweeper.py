"""The sweeper on SQLite and PostgreSQL: lost messages, deadlines, queue-wait cap, undecided jobs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.queue.inprocess import InProcessQueue
from beacon.queue.relay import OutboxRelay
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import executions, jobs, outbox
from beacon.worker.finalize import Finalizers
from beacon.worker.presence import WorkerInfo, WorkerPresence
from beacon.worker.sweeper import Sweeper
from tests.pipeline_support import Submitter


@pytest.fixture
def worker_settings() -> dict[str, Any]:
    """The package's runtime (tests/worker/conftest.py) with a lease the sweeper tests wait out."""
    return {"worker_lease_s": 0.6, "heartbeat_interval_s": 0.1, "max_queue_wait_s": 3600}


@pytest.fixture
async def finalizers(runtime: Runtime) -> AsyncIterator[Finalizers]:
    """The finalizer runner a pipeline shares with its sweeper; waited for before the runtime closes."""
    runner = Finalizers(runtime)
    yield runner
    await runner.wait(timeout_s=5.0)


def sweeper(runtime: Runtime, finalizers: Finalizers, queue: InProcessQueue | None = None) -> Sweeper:
    return Sweeper(runtime, queue or InProcessQueue(lease_s=0.6), grace_s=0.0, finalizers=finalizers)


async def outbox_reasons(runtime: Runtime) -> list[Any]:
    async with runtime.db.connect() as conn:
        return [
            row.payload.get("reason")
            for row in await conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id))
        ]


async def statuses(runtime: Runtime, job_id: str) -> tuple[str, list[tuple[str, str | None]]]:
    async with runtime.db.connect() as conn:
        job = await conn.scalar(sa.select(jobs.c.status).where(jobs.c.id == job_id))
        rows = await conn.execute(
            sa.select(executions.c.status, executions.c.error_code)
            .where(executions.c.job_id == job_id)
            .order_by(executions.c.id)
        )
        return str(job), [(row.status, row.error_code) for row in rows]


async def test_executions_whose_messages_vanished_are_enqueued_again(
    runtime: Runtime, finalizers: Finalizers, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "lost", regions=["US", "EU"])
    swept = sweeper(runtime, finalizers)
    report = await swept.sweep()
    assert sorted(report.skipped_regions) == ["EU", "US"]  # the relay has not published yet: not lost
    assert report.requeued == {}

    await OutboxRelay(runtime.db, InProcessQueue()).publish_batch()  # published into a queue that then dies
    report = await swept.sweep()
    assert report.requeued == {"US": 1, "EU": 1}
    assert await outbox_reasons(runtime) == [None, None, "sweeper", "sweeper"]


async def test_messages_still_in_the_queue_are_left_alone(
    runtime: Runtime, finalizers: Finalizers, submitter: Submitter
) -> None:
    queue = InProcessQueue(lease_s=0.6)
    await submitter.submit(runtime, "fine")
    await OutboxRelay(runtime.db, queue).publish_batch()
    assert (await sweeper(runtime, finalizers, queue).sweep()).requeued == {}
    await queue.consume("US", "w", count=10, block_s=0.01)  # pending is live too
    assert (await sweeper(runtime, finalizers, queue).sweep()).requeued == {}


async def test_running_work_is_requeued_only_when_its_worker_is_gone(
    runtime: Runtime, finalizers: Finalizers, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "held")
    await OutboxRelay(runtime.db, InProcessQueue()).publish_batch()
    await WorkerPresence(runtime.db, WorkerInfo("alive", "US", "noop", 1), runtime.runner_key).register()
    async with runtime.db.begin() as conn:
        await conn.execute(
            executions.update()
            .where(executions.c.job_id == "held")
            .values(status="running", worker_id="alive", updated_at=0)
        )
    assert (await sweeper(runtime, finalizers).sweep()).requeued == {}
    async with runtime.db.begin() as conn:
        await conn.execute(executions.update().where(executions.c.job_id == "held").values(worker_id="gone"))
    assert (await sweeper(runtime, finalizers).sweep()).requeued == {"US": 1}


async def test_a_job_out_of_budget_ends_timed_out_with_receipts(
    runtime: Runtime, finalizers: Finalizers, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "expired", models=["a", "b"], constraints={"timeout": "1s"})
    async with runtime.db.begin() as conn:
        await conn.execute(
            jobs.update().where(jobs.c.id == "expired").values(status="executing", started_at=now() - 5)
        )
    report = await sweeper(runtime, finalizers).sweep()
    assert report.timed_out == 2
    job, rows = await statuses(runtime, "expired")
    assert job == "timed_out" and rows == [("timed_out", "job_deadline_exceeded")] * 2
    async with runtime.db.connect() as conn:
        receipts = [row.receipt for row in await conn.execute(sa.select(executions.c.receipt))]
    assert all(
        r and r["status"] == "timed_out" and r["worker"]["id"].startswith("sweeper:") for r in receipts
    )


async def test_a_job_nobody_started_within_the_queue_wait_cap_times_out(
    runtime: Runtime, finalizers: Finalizers, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "forgotten", constraints={"timeout": "1s"})
    await submitter.submit(runtime, "recent", constraints={"timeout": "1s"})
    async with runtime.db.begin() as conn:  # a day in the queue: queue time never counts against "timeout"…
        await conn.execute(jobs.update().where(jobs.c.id == "forgotten").values(enqueued_at=now() - 7200))
    await sweeper(runtime, finalizers).sweep()
    assert await statuses(runtime, "forgotten") == ("timed_out", [("timed_out", "queue_wait_exceeded")])
    assert (await statuses(runtime, "recent"))[0] == "enqueued"  # …so a job merely waiting is left alone


async def test_an_unfinished_cancellation_is_completed(
    runtime: Runtime, finalizers: Finalizers, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "half-cancelled", models=["a", "b"])
    async with runtime.db.begin() as conn:  # the canceller died after recording the request
        await conn.execute(jobs.update().where(jobs.c.id == "half-cancelled").values(cancel_requested=True))
    report = await sweeper(runtime, finalizers).sweep()
    assert report.cancelled == 2
    assert await statuses(runtime, "half-cancelled") == ("cancelled", [("cancelled", "job_cancelled")] * 2)


async def test_a_job_left_undecided_after_its_last_execution_is_decided(
    runtime: Runtime, finalizers: Finalizers, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "undecided", models=["a", "b"])
    async with runtime.db.begin() as conn:  # a crash between the executions' end and the decision
        await conn.execute(
            executions.update().where(executions.c.job_id == "undecided").values(status="completed")
        )
        await conn.execute(
            jobs.update().where(jobs.c.id == "undecided").values(status="executing", started_at=now())
        )
    report = await sweeper(runtime, finalizers).sweep()
    assert report.settled == 1
    assert (await statuses(runtime, "undecided"))[0] == "completed"


async def test_a_report_of_a_quiet_sweep_is_quiet(runtime: Runtime, finalizers: Finalizers) -> None:
    report = await sweeper(runtime, finalizers).sweep()
    assert report.quiet and report.ran
    assert json.dumps(report.requeued) == "{}"
