"""The Queue contract, run against both implementations: Redis Streams and the in-process queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from beacon.queue.base import ControlEvent, Queue
from beacon.queue.inprocess import InProcessQueue
from beacon.queue.streams import RedisStreamsQueue

LEASE_S = 0.4


@pytest.fixture(params=["inprocess", pytest.param("redis", marks=pytest.mark.redis)])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[Queue]:
    if request.param == "inprocess":
        q: Queue = InProcessQueue(lease_s=LEASE_S)
    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"beacon-test-{uuid.uuid4().hex[:12]}"
        q = RedisStreamsQueue(url, prefix=prefix, lease_s=LEASE_S)
    yield q
    if isinstance(q, RedisStreamsQueue):
        keys = [key async for key in q.redis.scan_iter(match=f"{q.prefix}*")]
        if keys:
            await q.redis.delete(*keys)
    await q.aclose()


def msg(n: int, region: str = "EU") -> dict[str, object]:
    return {"execution_id": f"ex_{n}", "job_id": "job-1", "region": region, "attempt": 0, "enqueued_at": 1.0}


async def test_delivery_is_fifo_and_each_message_goes_to_one_consumer(queue: Queue) -> None:
    await queue.publish("EU", [msg(i) for i in range(10)])
    first = await queue.consume("EU", "a", count=4, block_s=0.1)
    second = await queue.consume("EU", "b", count=10, block_s=0.1)
    assert [d.payload["execution_id"] for d in first] == [f"ex_{i}" for i in range(4)]
    assert [d.payload["execution_id"] for d in second] == [f"ex_{i}" for i in range(4, 10)]
    assert await queue.consume("EU", "c", count=10, block_s=0.05) == []
    assert all(d.deliveries == 1 and d.region == "EU" for d in first + second)


async def test_regions_are_separate_queues(queue: Queue) -> None:
    await queue.publish("US", [msg(1, "US")])
    assert await queue.consume("EU", "a", count=10, block_s=0.05) == []
    assert len(await queue.consume("US", "a", count=10, block_s=0.05)) == 1


async def test_consume_waits_for_a_message_published_meanwhile(queue: Queue) -> None:
    async def later() -> None:
        await asyncio.sleep(0.1)
        await queue.publish("EU", [msg(1)])

    publisher = asyncio.create_task(later())
    started = time.monotonic()
    got = await queue.consume("EU", "a", count=1, block_s=2.0)
    await publisher
    assert len(got) == 1 and time.monotonic() - started < 1.5


async def test_acknowledged_messages_are_gone_for_good(queue: Queue) -> None:
    await queue.publish("EU", [msg(1), msg(2)])
    got = await queue.consume("EU", "a", count=2, block_s=0.1)
    await queue.ack("EU", [got[0].id])
    stats = await queue.stats("EU")
    assert (stats.depth, stats.pending) == (0, 1)
    await asyncio.sleep(LEASE_S + 0.1)
    reclaimed = await queue.reclaim("EU", "b", count=10)
    assert [d.payload["execution_id"] for d in reclaimed] == ["ex_2"]  # only the unacknowledged one
    assert [p["execution_id"] for p in await queue.live_payloads("EU")] == ["ex_2"]


async def test_a_dead_consumers_messages_are_reclaimed_after_the_lease(queue: Queue) -> None:
    await queue.publish("EU", [msg(1)])
    (held,) = await queue.consume("EU", "dead-worker", count=1, block_s=0.1)
    assert await queue.reclaim("EU", "live-worker", count=10) == []  # lease still running
    await asyncio.sleep(LEASE_S + 0.1)
    (taken,) = await queue.reclaim("EU", "live-worker", count=10)
    assert taken.id == held.id and taken.payload == held.payload and taken.deliveries == 2
    # The old holder learns it lost the message at its next heartbeat.
    assert await queue.renew("EU", "dead-worker", [held.id]) == [held.id]
    assert await queue.renew("EU", "live-worker", [held.id]) == []


async def test_heartbeats_keep_a_slow_message_with_its_live_consumer(queue: Queue) -> None:
    await queue.publish("EU", [msg(1)])
    (held,) = await queue.consume("EU", "slow", count=1, block_s=0.1)
    for _ in range(4):  # the execution runs for 4 × lease/2: longer than one lease
        await asyncio.sleep(LEASE_S / 2)
        assert await queue.renew("EU", "slow", [held.id]) == []
        assert await queue.reclaim("EU", "other", count=10) == []


async def test_released_messages_are_reclaimable_at_once(queue: Queue) -> None:
    await queue.publish("EU", [msg(1)])
    (held,) = await queue.consume("EU", "stopping", count=1, block_s=0.1)
    await queue.release("EU", "stopping", [held.id])
    (taken,) = await queue.reclaim("EU", "other", count=10)
    assert taken.id == held.id


async def test_retry_comes_back_after_its_delay_with_the_attempt_counted(queue: Queue) -> None:
    await queue.publish("EU", [msg(1)])
    (held,) = await queue.consume("EU", "a", count=1, block_s=0.1)
    await queue.retry(held, delay_s=0.3, reason="transient: backend busy")
    assert (await queue.stats("EU")).delayed == 1
    assert await queue.consume("EU", "a", count=1, block_s=0.05) == []
    started = time.monotonic()
    (again,) = await queue.consume("EU", "a", count=1, block_s=2.0)
    assert time.monotonic() - started >= 0.15
    assert again.payload["execution_id"] == "ex_1"
    assert again.payload["attempt"] == 1 and again.payload["reason"] == "retry"
    assert "backend busy" in again.payload["last_error"]
    assert (await queue.stats("EU")).pending == 1


async def test_stats_report_depth_pending_and_ages(queue: Queue) -> None:
    await queue.publish("ASIA", [msg(i, "ASIA") for i in range(3)])
    await asyncio.sleep(0.05)
    await queue.consume("ASIA", "w1", count=1, block_s=0.1)
    stats = await queue.stats("ASIA")
    assert (stats.depth, stats.pending, stats.delayed) == (2, 1, 0)
    assert stats.oldest_ready_age_s is not None and stats.oldest_ready_age_s >= 0.04
    assert stats.oldest_pending_age_s is not None
    assert [c["name"] for c in stats.consumers] == ["w1"]


async def test_control_events_reach_every_subscriber(queue: Queue) -> None:
    received: list[list[ControlEvent]] = [[], []]

    async def listen(into: list[ControlEvent]) -> None:
        async for event in queue.control_events():
            into.append(event)

    listeners = [asyncio.create_task(listen(into)) for into in received]
    await asyncio.sleep(0.3)  # let the subscriptions start
    await queue.signal(ControlEvent("cancel", job_id="job-9"))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not all(received):
        await asyncio.sleep(0.05)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    assert [r[0].job_id for r in received] == ["job-9", "job-9"]


async def test_malformed_payloads_are_delivered_for_dead_lettering(queue: Queue) -> None:
    await queue.publish("EU", [{"region": "EU"}])
    (delivery,) = await queue.consume("EU", "a", count=1, block_s=0.1)
    message, error = delivery.parse()
    assert message is None and error is not None and "execution_id" in error


@pytest.mark.redis
async def test_redis_queue_survives_a_flush_of_its_keys(redis_url: str, redis_prefix: str) -> None:
    """After FLUSHALL (here: deleting the queue's keys) the group is recreated on the next call."""
    import redis.asyncio as aioredis

    from beacon.queue.streams import RedisStreamsQueue

    queue = RedisStreamsQueue(redis_url, prefix=redis_prefix, lease_s=LEASE_S)
    client = aioredis.from_url(redis_url)
    try:
        await queue.publish("EU", [msg(1)])
        (held,) = await queue.consume("EU", "a", count=1, block_s=0.1)
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
        await client.delete(*keys)
        assert await queue.renew("EU", "a", [held.id]) == []  # gone, not taken: keep working
        await queue.ack("EU", [held.id])  # a no-op, not an error
        assert await queue.consume("EU", "a", count=1, block_s=0.05) == []
        await queue.publish("EU", [msg(2)])
        (after,) = await queue.consume("EU", "a", count=1, block_s=0.5)
        assert after.payload["execution_id"] == "ex_2"
        assert (await queue.stats("EU")).pending == 1
    finally:
        await client.aclose()
        await queue.aclose()


@pytest.mark.redis
async def test_redis_queue_reports_an_unreachable_server_as_queue_unavailable(unused_tcp_port: int) -> None:
    from beacon.queue.base import QueueUnavailable
    from beacon.queue.streams import RedisStreamsQueue

    queue = RedisStreamsQueue(f"redis://127.0.0.1:{unused_tcp_port}/0", lease_s=LEASE_S)
    try:
        with pytest.raises(QueueUnavailable):
            await queue.publish("EU", [msg(1)])
        assert await queue.ping() is False
    finally:
        await queue.aclose()
