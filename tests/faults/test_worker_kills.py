"""kill -9 a worker in the middle of an execution, 20 times across a run of 100 jobs.

Real ``beacon worker`` processes on PostgreSQL and Redis; each execution pauses mid-way (the
``worker.mid_execution`` failpoint) so the kill lands while it runs. Afterwards every job is
terminal and every execution has exactly one terminal row, one receipt and one log leaf.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.store.tables import executions, workers
from tests.faults.conftest import Cluster
from tests.pipeline_support import BeaconProcess, audit_pipeline, wait_for_jobs

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.timeout(300, method="thread"),
]

JOBS = 100
KILLS = 20
WORKERS = 3


async def victim(cluster: Cluster, processes: list[BeaconProcess]) -> BeaconProcess | None:
    """A live worker process in the middle of an execution's first attempt, right now.

    Kills are spread over different executions: killing the same one again and again is a crash
    loop, which the retry budget stops on purpose (tests/worker covers that).
    """
    by_pid = {p.pid: p for p in processes if p.alive}
    async with cluster.runtime.db.connect() as conn:
        rows = await conn.execute(
            sa.select(workers.c.pid)
            .join(executions, executions.c.worker_id == workers.c.id)
            .where(
                executions.c.status == "running", executions.c.attempt == 1, workers.c.pid.in_(list(by_pid))
            )
            .distinct()
        )
        busy = [by_pid[row.pid] for row in rows]
    return random.choice(busy) if busy else None


async def test_twenty_kills_lose_nothing_and_duplicate_nothing(
    postgres_url: str, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, redis_url, redis_prefix)
    failpoint = "worker.mid_execution=sleep(0.5)"
    live = [cluster.start_worker("US", failpoints=failpoint) for _ in range(WORKERS)]
    ids = [await cluster.submitter.submit(cluster.runtime, f"kill-{n:03d}") for n in range(JOBS)]

    kills = 0
    deadline = time.monotonic() + 150
    while kills < KILLS:
        assert time.monotonic() < deadline, f"only {kills} kills landed\n{cluster.logs()}"
        target = await victim(cluster, live)
        if target is None:
            await asyncio.sleep(0.05)
            continue
        target.kill()  # SIGKILL: no drain, no cleanup, its messages stay pending
        kills += 1
        live.remove(target)
        live.append(cluster.start_worker("US", failpoints=failpoint))
        await asyncio.sleep(0.3)

    statuses = await wait_for_jobs(cluster.runtime.db, ids, timeout_s=120)
    assert set(statuses.values()) == {"completed"}, cluster.logs()
    problems = await audit_pipeline(cluster.runtime.db, [cluster.runtime.runner_key.public_key_b64])
    assert problems == [], problems
    async with cluster.runtime.db.connect() as conn:
        rows = (await conn.execute(sa.select(executions.c.attempt, executions.c.status))).all()
    assert len(rows) == JOBS and {row.status for row in rows} == {"completed"}
    taken_over = sum(1 for row in rows if row.attempt > 1)
    assert taken_over >= KILLS  # every kill interrupted at least one execution, which ran again
