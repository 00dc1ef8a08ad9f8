"""Kill the relay between publishing and marking: the messages go out twice, the work runs once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from beacon.store.tables import executions, outbox
from tests.faults.conftest import Cluster
from tests.pipeline_support import audit_pipeline, wait_for_jobs

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.timeout(180, method="thread"),
]

JOBS = 10


async def test_a_relay_killed_after_publishing_only_causes_harmless_duplicates(
    postgres_url: str, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, redis_url, redis_prefix, relay=False, sweeper=False)
    ids = [
        await cluster.submitter.submit(cluster.runtime, f"relay-{n}", models=["a", "b"]) for n in range(JOBS)
    ]

    # The relay publishes the batch, then the failpoint SIGKILLs its process before it marks the rows.
    first = cluster.start_server(failpoints="relay.after_publish=1*kill", extra=["--no-sweeper"])
    deadline = time.monotonic() + 60
    while first.alive:
        assert time.monotonic() < deadline, first.log()[-3000:]
        await asyncio.sleep(0.1)
    assert first.process is not None and first.process.returncode == -9

    stream = f"{redis_prefix}:{{US}}:q"
    client = aioredis.from_url(redis_url)
    try:
        assert await client.xlen(stream) == 2 * JOBS  # published…
        async with cluster.runtime.db.connect() as conn:
            unpublished = await conn.scalar(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
        assert unpublished == 2 * JOBS  # …but not marked

        cluster.start_server(extra=["--no-sweeper"])  # a new relay publishes the same rows again

        async def republished() -> bool:
            return bool(await client.xlen(stream) == 4 * JOBS)

        deadline = time.monotonic() + 60
        while not await republished():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()

    cluster.start_worker("US", concurrency=2)
    statuses = await wait_for_jobs(cluster.runtime.db, ids, timeout_s=60)
    assert set(statuses.values()) == {"completed"}, cluster.logs()
    assert await audit_pipeline(cluster.runtime.db, [cluster.runtime.runner_key.public_key_b64]) == []
    async with cluster.runtime.db.connect() as conn:
        attempts = [row.attempt for row in await conn.execute(sa.select(executions.c.attempt))]
    assert attempts == [1] * (2 * JOBS)  # each execution ran once; every duplicate was acknowledged unrun
