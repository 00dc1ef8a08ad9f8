"""``beacon worker`` as a real process on PostgreSQL and Redis: serve, drain on SIGTERM or on request."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from beacon.api import create_app
from beacon.store.tables import workers
from tests.pipeline_support import REPO, Cluster, audit_pipeline, child_environment, wait_for_jobs, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.timeout(180, method="thread"),
]


async def worker_rows(cluster: Cluster) -> dict[int, str]:
    async with cluster.runtime.db.connect() as conn:
        return {row.pid: row.state for row in await conn.execute(sa.select(workers.c.pid, workers.c.state))}


async def test_worker_processes_serve_a_region_and_drain_on_sigterm(
    postgres_url: str, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, redis_url, redis_prefix)
    first = cluster.start_worker("EU", concurrency=4)
    second = cluster.start_worker("EU", concurrency=4)
    ids = [
        await cluster.submitter.submit(cluster.runtime, f"proc-{n}", regions=["EU"], models=["a", "b"])
        for n in range(15)
    ]
    assert set((await wait_for_jobs(cluster.runtime.db, ids, timeout_s=60)).values()) == {"completed"}
    assert await audit_pipeline(cluster.runtime.db, [cluster.runtime.runner_key.public_key_b64]) == []

    assert await asyncio.to_thread(first.terminate) == 0  # SIGTERM: drain, then a clean exit
    rows = await worker_rows(cluster)
    assert rows[first.pid] == "stopped" and rows[second.pid] == "running"


async def test_an_operator_drains_a_worker_process_over_http(
    postgres_url: str, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, redis_url, redis_prefix, operator_tokens=["op-token"])
    process = cluster.start_worker("ASIA")

    async def registered() -> bool:
        return process.pid in await worker_rows(cluster)

    await wait_until(registered, timeout_s=30, what="the worker to register")
    async with cluster.runtime.db.connect() as conn:
        worker_id = await conn.scalar(sa.select(workers.c.id).where(workers.c.pid == process.pid))
    app = create_app(cluster.runtime.settings, cluster.runtime, pipeline=cluster.pipeline)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            answer = await http.post(
                f"/admin/ops/workers/{worker_id}/drain", headers={"Authorization": "Bearer op-token"}
            )
            assert answer.status_code == 200, answer.text
    finally:
        await app.state.rate_limiter.aclose()  # what the lifespan does (an in-process client does not run it)
    assert process.process is not None
    assert await asyncio.to_thread(process.process.wait, 20) == 0
    assert (await worker_rows(cluster))[process.pid] == "stopped"


def test_a_worker_without_a_queue_to_share_refuses_to_start() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from beacon.cli import main; main()", "worker", "--region", "EU"],
        env=child_environment({}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "needs REDIS_URL" in result.stderr
    unknown = subprocess.run(
        [sys.executable, "-c", "from beacon.cli import main; main()", "worker", "--region", "MARS"],
        env=child_environment({"REDIS_URL": "redis://127.0.0.1:1/0"}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "unknown region 'MARS'" in unknown.stderr
