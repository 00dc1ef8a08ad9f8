"""Poison messages become dead letters in the database with their reason, after their retry budget;
Redis only acknowledges them (decision 0021).

The executor here fails on purpose (a test double: a backend that is always down); the queue,
database, relay and worker are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from beacon.store.tables import dead_letters, executions
from beacon.worker.loop import Worker
from tests.faults.conftest import Cluster
from tests.pipeline_support import wait_for_jobs, wait_until
from tests.worker.conftest import ScriptedExecutor

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120, method="thread")]


async def test_a_message_that_keeps_failing_is_dead_lettered_with_its_reason(
    postgres_url: str, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, redis_url, redis_prefix, max_attempts=4)
    runtime = cluster.runtime
    assert runtime.queue.kind == "redis"
    executor = ScriptedExecutor(fail="transient", code="ollama_unreachable")
    worker = Worker(runtime, runtime.queue, region="EU", executor=executor, block_s=0.2)
    task = asyncio.create_task(worker.run())
    client = aioredis.from_url(redis_url)
    try:
        await cluster.submitter.submit(runtime, "poisoned", benchmark="who-are-you", regions=["EU"])
        await client.xadd(f"{redis_prefix}:{{EU}}:q", {"p": b"{not json"})  # garbage from outside the relay
        assert await wait_for_jobs(runtime.db, ["poisoned"], timeout_s=30) == {"poisoned": "failed"}

        async def two_dead() -> bool:
            async with runtime.db.connect() as conn:
                return await conn.scalar(sa.select(sa.func.count()).select_from(dead_letters)) == 2

        await wait_until(two_dead, timeout_s=10, what="two dead letters")
        async with runtime.db.connect() as conn:
            recorded = (await conn.execute(sa.select(dead_letters).order_by(dead_letters.c.id))).all()
        assert [key async for key in client.scan_iter(f"{redis_prefix}:*dead*")] == []  # stored once
    finally:
        worker.drain()
        await asyncio.wait_for(task, 15)
        await client.aclose()

    by_reason = {letter.reason: letter for letter in recorded}
    budget = next(reason for reason in by_reason if reason.startswith("ollama_unreachable"))
    assert "attempt 4 of 4: retry budget exhausted" in budget
    assert by_reason[budget].attempts == 4
    assert by_reason[budget].payload["job_id"] == "poisoned"
    garbage = next(reason for reason in by_reason if reason.startswith("invalid_message"))
    assert "not a JSON object" in garbage
    assert len(executor.calls) == 4  # the budget: four attempts, then no more backend calls

    async with runtime.db.connect() as conn:
        (row,) = (await conn.execute(sa.select(executions).where(executions.c.job_id == "poisoned"))).all()
    assert (row.status, row.attempt, row.error_code) == ("failed", 4, "ollama_unreachable")
    assert row.receipt["status"] == "failed"  # failed executions get their signed receipt too
    assert sorted(r.error_code for r in recorded) == ["invalid_message", "ollama_unreachable"]
    stats = await runtime.queue.stats("EU")
    assert (stats.depth, stats.pending, stats.delayed) == (0, 0, 0)
