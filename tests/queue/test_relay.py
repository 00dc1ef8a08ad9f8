"""The outbox relay on SQLite and PostgreSQL: order, marking, poison rows, concurrency, crashes."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from beacon import failpoints
from beacon.queue.inprocess import InProcessQueue
from beacon.queue.message import execution_message
from beacon.queue.relay import OutboxRelay, prune_published
from beacon.store import Database, now
from beacon.store.tables import dead_letters, outbox


async def add_rows(db: Database, rows: list[tuple[str, Any]]) -> None:
    async with db.begin() as conn:
        await conn.execute(
            outbox.insert(),
            [{"topic": topic, "payload": payload, "created_at": now()} for topic, payload in rows],
        )


def message(n: int, region: str) -> dict[str, Any]:
    return execution_message(f"ex_{n}", "job-1", region, enqueued_at=1.0)


async def drain(queue: InProcessQueue, region: str) -> list[str]:
    got = await queue.consume(region, "test", count=10_000, block_s=0.01)
    return [d.payload["execution_id"] for d in got]


async def test_rows_are_published_in_order_per_region_then_marked(db: Database) -> None:
    queue = InProcessQueue()
    relay = OutboxRelay(db, queue, batch=4)
    await add_rows(db, [(r, message(i, r)) for i, r in enumerate(["EU", "US", "EU", "ASIA", "EU", "US"])])
    assert (await relay.lag()).unpublished == 6
    assert await relay.publish_batch() == 4
    assert await relay.publish_batch() == 2
    assert await relay.publish_batch() == 0
    assert await drain(queue, "EU") == ["ex_0", "ex_2", "ex_4"]
    assert await drain(queue, "US") == ["ex_1", "ex_5"]
    assert await drain(queue, "ASIA") == ["ex_3"]
    lag = await relay.lag()
    assert (lag.unpublished, lag.oldest_age_s) == (0, None)


async def test_a_poison_row_becomes_a_dead_letter_once_and_is_never_retried(db: Database) -> None:
    queue = InProcessQueue()
    relay = OutboxRelay(db, queue)
    await add_rows(db, [("EU", {"job_id": "j"}), ("US", message(1, "EU")), ("EU", message(2, "EU"))])
    assert await relay.publish_batch() == 3
    assert await relay.publish_batch() == 0
    assert await drain(queue, "EU") == ["ex_2"]
    assert await drain(queue, "US") == []
    async with db.connect() as conn:
        letters = (await conn.execute(sa.select(dead_letters).order_by(dead_letters.c.id))).all()
    assert [(row.region, row.error_code) for row in letters] == [
        ("EU", "invalid_message"),
        ("US", "invalid_message"),
    ]
    assert "execution_id" in letters[0].reason and "differs from payload region" in letters[1].reason


async def test_a_crash_between_publishing_and_marking_publishes_again(db: Database) -> None:
    """At-least-once: the rows stay unpublished and go out again; the worker makes duplicates harmless."""
    queue = InProcessQueue()
    relay = OutboxRelay(db, queue)
    await add_rows(db, [("EU", message(1, "EU")), ("EU", message(2, "EU"))])
    failpoints.configure("relay.after_publish=1*raise")
    try:
        with pytest.raises(failpoints.FailpointError):
            await relay.publish_batch()
    finally:
        failpoints.configure("")
    assert (await relay.lag()).unpublished == 2  # the marking rolled back
    assert await relay.publish_batch() == 2
    assert await drain(queue, "EU") == ["ex_1", "ex_2", "ex_1", "ex_2"]


async def test_concurrent_relays_publish_each_row_once(db: Database) -> None:
    """PostgreSQL: FOR UPDATE SKIP LOCKED splits the backlog; SQLite: the write lock serialises."""
    queue = InProcessQueue()
    await add_rows(db, [("EU", message(i, "EU")) for i in range(600)])
    relays = [OutboxRelay(db, queue, batch=50) for _ in range(4)]

    async def run(relay: OutboxRelay) -> None:
        while await relay.publish_batch():
            await asyncio.sleep(0)

    await asyncio.gather(*(run(relay) for relay in relays))
    published = Counter(await drain(queue, "EU"))
    assert len(published) == 600 and set(published.values()) == {1}
    if db.is_postgres:
        assert sum(1 for relay in relays if relay.published) > 1  # the work was actually shared


async def test_the_run_loop_stops_on_request_and_wakes_on_demand(db: Database) -> None:
    queue = InProcessQueue()
    relay = OutboxRelay(db, queue)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, idle_s=5.0))
    await asyncio.sleep(0.2)  # idle: polling slowly now
    await add_rows(db, [("EU", message(1, "EU"))])
    relay.wake()
    got = await queue.consume("EU", "t", count=1, block_s=2.0)
    assert [d.payload["execution_id"] for d in got] == ["ex_1"]
    stop.set()
    relay.wake()
    await asyncio.wait_for(task, 2.0)


async def test_published_rows_are_pruned_after_the_retention(db: Database) -> None:
    queue = InProcessQueue()
    await add_rows(db, [("EU", message(i, "EU")) for i in range(3)])
    await OutboxRelay(db, queue).publish_batch()
    await add_rows(db, [("EU", message(9, "EU"))])  # unpublished: never pruned
    assert await prune_published(db, older_than_s=3600) == 0
    assert await prune_published(db, older_than_s=-1) == 3
    async with db.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(outbox)) == 1
