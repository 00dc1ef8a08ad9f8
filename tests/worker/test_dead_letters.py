"""Requeue and purge of dead letters: the domain functions the ops routes call (decision 1504)."""

from __future__ import annotations

import sqlalchemy as sa

from beacon.queue.base import Delivery
from beacon.queue.message import execution_message
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import audit_log, dead_letters, executions, outbox
from beacon.worker import dead_letters as records
from beacon.worker.claims import DeadLetterOrder, insert_dead_letters
from tests.pipeline_support import Submitter


async def test_requeue_publishes_what_can_still_run_and_purge_forgets(
    runtime: Runtime, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "dl", models=["a", "b"])
    async with runtime.db.begin() as conn:
        first, second = (
            await conn.execute(
                sa.select(executions.c.id).where(executions.c.job_id == "dl").order_by(executions.c.id)
            )
        ).scalars()
        await conn.execute(executions.update().where(executions.c.id == second).values(status="failed"))
        await conn.execute(outbox.delete())
        orders = [
            DeadLetterOrder(
                Delivery(f"1-{n}", "US", execution_message(ex, "dl", "US", enqueued_at=now())), "x: y", 1
            )
            for n, ex in enumerate((first, second))
        ]
        orders.append(DeadLetterOrder(Delivery("1-9", "US", {"bad": True}), "invalid_message: no ids", 1))
        await insert_dead_letters(conn, orders, now())
        assert await records.waiting_by_region(conn) == {"US": 3}
        ids = list((await conn.execute(sa.select(dead_letters.c.id).order_by(dead_letters.c.id))).scalars())

    outcome = await records.requeue(runtime.db, records.Selection(region="US"), actor="op", request_id="r1")
    assert outcome.requeued == [ids[0]]
    assert [s["id"] for s in outcome.skipped] == [ids[2], ids[1]]
    assert "has ended (failed)" in outcome.skipped[1]["reason"]
    async with runtime.db.connect() as conn:
        (queued,) = (await conn.execute(sa.select(outbox))).all()
        assert queued.payload["execution_id"] == first and queued.payload["reason"] == "requeue"
        assert await records.waiting_by_region(conn) == {"US": 2}
        (entry,) = (await conn.execute(sa.select(audit_log))).all()
    assert (entry.actor, entry.action, entry.request_id) == ("op", "ops.dead_letters.requeue", "r1")
    assert entry.detail == {"requeued": [ids[0]], "skipped": [ids[2], ids[1]]}

    again = await records.requeue(runtime.db, records.Selection(ids=[ids[0]]), actor="op", request_id=None)
    assert (again.requeued, again.skipped) == ([], [])  # requeued once only

    assert (
        await records.purge(runtime.db, records.Selection(ids=ids[1:]), actor="admin", request_id=None) == 2
    )
    async with runtime.db.connect() as conn:
        assert list((await conn.execute(sa.select(dead_letters.c.id))).scalars()) == [ids[0]]
        assert await records.waiting_by_region(conn) == {}
