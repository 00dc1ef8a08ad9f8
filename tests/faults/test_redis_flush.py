"""FLUSHALL mid-run (on a redis-server of this test): every job still completes.

Redis keeps nothing on disk here, so the database is the truth: the sweeper finds unfinished
executions that have no message any more and publishes them again through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from beacon.store.tables import outbox
from tests.faults.conftest import Cluster, RedisServer
from tests.pipeline_support import audit_pipeline, job_statuses, wait_for_jobs, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180, method="thread")]

JOBS = 40


async def test_flushall_in_the_middle_of_a_run_loses_nothing(
    postgres_url: str, private_redis: RedisServer, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, private_redis.url, "beacon")
    failpoint = "worker.mid_execution=sleep(0.2)"
    for _ in range(2):
        cluster.start_worker("US", concurrency=2, failpoints=failpoint)
    ids = [await cluster.submitter.submit(cluster.runtime, f"flush-{n:02d}") for n in range(JOBS)]

    async def some_done() -> bool:
        statuses = await job_statuses(cluster.runtime.db, ids)
        return sum(1 for s in statuses.values() if s == "completed") >= 8

    await wait_until(some_done, timeout_s=60, what="the first jobs")
    client = aioredis.from_url(private_redis.url)
    try:
        await client.flushall()  # queue, pending entries, consumer groups, delayed retries: all gone
    finally:
        await client.aclose()

    statuses = await wait_for_jobs(cluster.runtime.db, ids, timeout_s=90)
    assert set(statuses.values()) == {"completed"}, cluster.logs()
    assert await audit_pipeline(cluster.runtime.db, [cluster.runtime.runner_key.public_key_b64]) == []
    async with cluster.runtime.db.connect() as conn:
        requeued = [row.payload for row in await conn.execute(sa.select(outbox.c.payload))]
    swept = [p for p in requeued if p.get("reason") == "sweeper"]
    assert swept, "the flush should have left work that only the sweeper could find"
