"""Stop PostgreSQL (a cluster of this test) for a few seconds in the middle of a run.

While it is down the API answers 503 problems and the workers back off without dying; when it is
back, everything resumes and every job completes. A worker started during the outage waits for the
database (``BEACON_START_WAIT_SECONDS``) and then serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.faults.conftest import Cluster, PostgresCluster, server_url
from tests.pipeline_support import audit_pipeline, wait_for_jobs

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240, method="thread")]

JOBS = 12


async def test_api_answers_503_workers_back_off_and_all_resumes(
    private_postgres: PostgresCluster, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(
        private_postgres.url, redis_url, redis_prefix, relay=False, sweeper=False
    )
    server = cluster.start_server()
    url = server_url(server)
    workers = [cluster.start_worker("US", failpoints="worker.mid_execution=sleep(0.4)") for _ in range(2)]
    for worker in workers:  # serving before the outage: this test is about workers at work
        await asyncio.to_thread(worker.wait_for_line, "Beacon worker ", 60)

    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for n in range(JOBS):
            answer = await http.post(
                "/api/v1/jobs",
                content=cluster.submitter.body(f"outage-{n:02d}"),
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 202, answer.text
        await asyncio.sleep(1.0)  # some executions are running now

        await asyncio.to_thread(private_postgres.stop, "fast")
        try:
            for _ in range(3):
                down = await http.get("/api/v1/executions")
                assert down.status_code == 503, down.text
                assert down.headers["content-type"].startswith("application/problem+json")
                assert down.json()["code"] == "dependency_unavailable" and "Retry-After" in down.headers
            refused = await http.post(
                "/api/v1/jobs",
                content=cluster.submitter.body("during-outage"),
                headers={"Content-Type": "application/json"},
            )
            assert refused.status_code == 503
            await asyncio.sleep(3.0)
            assert server.alive and all(w.alive for w in workers), cluster.logs()
        finally:
            await asyncio.to_thread(private_postgres.start)

        ids = [f"outage-{n:02d}" for n in range(JOBS)]
        statuses = await wait_for_jobs(cluster.runtime.db, ids, timeout_s=90)
        assert set(statuses.values()) == {"completed"}, cluster.logs()
        listed = (await http.get("/api/v1/executions", params={"limit": 50})).json()
        assert listed["total"] == JOBS
    assert await audit_pipeline(cluster.runtime.db, [cluster.runtime.runner_key.public_key_b64]) == []
    assert "unavailable" in "".join(w.log() for w in workers)  # they noticed, and backed off


async def test_a_worker_started_while_the_database_is_down_waits_for_it_and_serves(
    private_postgres: PostgresCluster, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    # A CI run found this: a worker that started during the outage died with a traceback at its
    # schema check, so the jobs stayed enqueued once the database was back.
    cluster: Cluster = await make_cluster(private_postgres.url, redis_url, redis_prefix)
    await asyncio.to_thread(private_postgres.stop, "fast")
    try:
        worker = cluster.start_worker("US")
        await asyncio.to_thread(worker.wait_for_line, "", 60)  # it runs and has said something
        await asyncio.sleep(2.0)
        assert worker.alive, worker.log()[-3000:]
    finally:
        await asyncio.to_thread(private_postgres.start)
    await asyncio.to_thread(worker.wait_for_line, "Beacon worker ", 60)

    async with httpx.AsyncClient(base_url=server_url(cluster.start_server()), timeout=10) as http:
        for n in range(3):
            answer = await http.post(
                "/api/v1/jobs",
                content=cluster.submitter.body(f"late-{n}"),
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 202, answer.text
    statuses = await wait_for_jobs(cluster.runtime.db, [f"late-{n}" for n in range(3)], timeout_s=60)
    assert set(statuses.values()) == {"completed"}, cluster.logs()
    assert "database at start unavailable" in worker.log()
