"""The claim/finish transactions: fencing by attempt, takeover of dead workers, crash-loop budget."""

from __future__ import annotations

import sqlalchemy as sa

from beacon.queue.base import Delivery
from beacon.queue.message import execution_message
from beacon.queue.retry import RetryPolicy
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import dead_letters, executions, workers
from beacon.worker.claims import Claims
from beacon.worker.endings import Ending
from beacon.worker.lifecycle import ExecutionStatus
from beacon.worker.presence import WorkerInfo, WorkerPresence
from tests.pipeline_support import Submitter


async def delivery_for(runtime: Runtime, job_id: str, message_id: str = "1-1") -> Delivery:
    async with runtime.db.connect() as conn:
        (execution_id,) = (
            await conn.execute(sa.select(executions.c.id).where(executions.c.job_id == job_id))
        ).one()
    return Delivery(message_id, "US", execution_message(execution_id, job_id, "US", enqueued_at=now()))


def store(runtime: Runtime, worker_id: str) -> Claims:
    return Claims(runtime, worker_id=worker_id, region="US", policy=RetryPolicy(max_attempts=3), lease_s=0.6)


async def live(runtime: Runtime, worker_id: str) -> None:
    await WorkerPresence(runtime.db, WorkerInfo(worker_id, "US", "noop", 1), runtime.runner_key).register()


async def test_a_replaced_workers_late_result_is_refused(runtime: Runtime, submitter: Submitter) -> None:
    await submitter.submit(runtime, "fence", benchmark="noop")
    delivery = await delivery_for(runtime, "fence")
    a, b = store(runtime, "worker-a"), store(runtime, "worker-b")
    await live(runtime, "worker-b")  # worker-a never registered: to b it looks dead

    (claim_a,) = (await a.claim([delivery], set())).claims
    (claim_b,) = (await b.claim([delivery], set())).claims  # takes over: a new attempt
    assert (claim_a.attempt, claim_b.attempt) == (1, 2)

    late = await a.finish([(claim_a, Ending(ExecutionStatus.COMPLETED, now()))])
    assert late.stale == [claim_a.execution_id] and late.ack == [] and late.decided == []
    done = await b.finish([(claim_b, Ending(ExecutionStatus.COMPLETED, now()))])
    assert done.ack == [delivery] and [job for job, _ in done.decided] == ["fence"]
    again = await b.finish([(claim_b, Ending(ExecutionStatus.COMPLETED, now()))])  # a retried commit
    assert again.ack == [delivery] and again.stale == [] and again.decided == []
    async with runtime.db.connect() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.job_id == "fence"))).one()
    assert (row.status, row.attempt, row.worker_id, row.receipt["attempt"]) == ("completed", 2, "worker-b", 2)


async def test_a_message_for_work_running_on_a_live_worker_is_deferred(
    runtime: Runtime, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "busy", benchmark="noop")
    delivery = await delivery_for(runtime, "busy")
    await live(runtime, "worker-a")
    (claim,) = (await store(runtime, "worker-a").claim([delivery], set())).claims
    duplicate = await store(runtime, "worker-b").claim([Delivery("2-1", "US", delivery.payload)], set())
    assert duplicate.claims == [] and [d.id for d in duplicate.defer] == ["2-1"]
    mine = await store(runtime, "worker-a").claim(
        [Delivery("3-1", "US", delivery.payload)], {claim.execution_id}
    )
    assert [d.id for d in mine.defer] == ["3-1"]


async def test_a_crash_loop_is_stopped_by_the_attempt_budget(runtime: Runtime, submitter: Submitter) -> None:
    """An execution whose workers keep dying (3 claims, no result) fails with a receipt and a dead letter."""
    await submitter.submit(runtime, "crashes", benchmark="noop")
    delivery = await delivery_for(runtime, "crashes")
    for n in range(3):
        batch = await store(runtime, f"doomed-{n}").claim([delivery], set())
        assert [c.attempt for c in batch.claims] == [n + 1]
    final = await store(runtime, "survivor").claim([delivery], set())
    assert final.claims == [] and [order.reason.split(":")[0] for order in final.dead] == [
        "attempts_exhausted"
    ]
    assert [job for job, _ in final.decided] == ["crashes"]
    async with runtime.db.connect() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.job_id == "crashes"))).one()
        (letter,) = (await conn.execute(sa.select(dead_letters))).all()
    assert (row.status, row.error_code, row.attempt, row.receipt["attempt"]) == (
        "failed",
        "attempts_exhausted",
        3,
        3,
    )
    assert letter.execution_id == row.id and letter.attempts == 3


async def test_messages_that_name_nothing_or_the_wrong_thing_are_dead_lettered(
    runtime: Runtime, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "real", benchmark="noop")
    good = await delivery_for(runtime, "real")
    wrong_job = Delivery("1-2", "US", {**good.payload, "job_id": "someone-else"})
    unknown = Delivery("1-3", "US", {**good.payload, "execution_id": "ex_missing"})
    wrong_region = Delivery("1-4", "US", {**good.payload, "region": "EU"})
    garbage = Delivery("1-5", "US", "not json")
    batch = await store(runtime, "w").claim([wrong_job, unknown, wrong_region, garbage], set())
    reasons = sorted(order.reason.split(":")[0] for order in batch.dead)
    assert reasons == ["invalid_message", "message_mismatch", "unknown_execution", "wrong_region"]
    assert batch.claims == []
    async with runtime.db.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(dead_letters)) == 4
        assert await conn.scalar(sa.select(sa.func.count()).select_from(workers)) == 0
