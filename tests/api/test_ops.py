"""The operations endpoints (emergency procedures) with a real embedded pipeline behind the API."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from beacon.queue.base import Delivery
from beacon.queue.message import execution_message
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import executions
from beacon.worker.claims import DeadLetterOrder, insert_dead_letters
from beacon.worker.service import Pipeline
from tests.api.conftest import auth
from tests.pipeline_support import wait_for_jobs, wait_until

Sign = Callable[[dict[str, Any]], bytes]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"heartbeat_interval_s": 0.1, "worker_lease_s": 0.6}


@pytest.fixture
async def pipeline(runtime: Runtime, app: FastAPI) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline.embedded(runtime)
    app.state.pipeline = pipeline  # what create_app(..., pipeline=) does in `beacon serve`
    await pipeline.start()
    yield pipeline
    await pipeline.stop(timeout_s=10)


def job(job_id: str, regions: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": job_id,
        "version": "1",
        "benchmark": "noop",
        "container": {"image": "noop"},
        "constraints": {"regions": regions or ["US"]},
    }


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/admin/ops/dead-letters/requeue", {"ids": [False]}),  # issue 16, item 6: false was the id 0
        ("/admin/ops/dead-letters/requeue", {"ids": ["7"]}),
        ("/admin/ops/dead-letters/purge", {"ids": [True]}),
        ("/admin/ops/pause", {"reason": 5}),
    ],
)
async def test_request_bodies_are_not_coerced(
    client: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> None:
    response = await client.post(url, json=body, headers=auth("admin"))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


async def test_pause_refuses_submissions_until_resume(client: httpx.AsyncClient, sign: Sign) -> None:
    assert (await client.post("/admin/ops/pause", headers=auth("operator"))).status_code == 403
    paused = await client.post("/admin/ops/pause", json={"reason": "drill"}, headers=auth("admin"))
    assert paused.status_code == 200 and paused.json()["submissions_paused"] is True
    refused = await client.post("/api/v1/jobs", content=sign(job("while-paused")), headers=JSON)
    assert refused.status_code == 503 and refused.json()["code"] == "submissions_paused"
    stats = (await client.get("/admin/ops/queues", headers=auth("operator"))).json()
    assert stats["submissions_paused"] is True
    resumed = await client.post("/admin/ops/resume", headers=auth("admin"))
    assert resumed.json()["submissions_paused"] is False
    accepted = await client.post("/api/v1/jobs", content=sign(job("after-resume")), headers=JSON)
    assert accepted.status_code == 202


async def test_queue_stats_show_depth_and_the_outbox(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime
) -> None:
    assert (await client.get("/admin/ops/queues")).status_code == 401
    await client.post("/api/v1/jobs", content=sign(job("queued", ["US", "EU"])), headers=JSON)
    stats = (await client.get("/admin/ops/queues", headers=auth("operator"))).json()
    assert stats["kind"] == "inprocess" and stats["relay"]["unpublished"] == 2  # no relay running here
    regions = {r["region"]: r for r in stats["regions"]}
    assert set(regions) == {"US", "EU", "ASIA"}
    assert regions["US"]["executions"] == {"queued": 1} and regions["ASIA"]["executions"] == {}
    for key in ("depth", "pending", "delayed", "dead_letters", "oldest_ready_age_s", "oldest_pending_age_s"):
        assert key in regions["EU"]


async def test_dead_letters_are_listed_requeued_when_still_runnable_and_purged(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime
) -> None:
    await client.post("/api/v1/jobs", content=sign(job("dl")), headers=JSON)
    async with runtime.db.begin() as conn:
        (execution_id,) = (
            await conn.execute(sa.select(executions.c.id).where(executions.c.job_id == "dl"))
        ).one()
        payload = execution_message(execution_id, "dl", "US", enqueued_at=now())
        await insert_dead_letters(
            conn,
            [
                DeadLetterOrder(Delivery("1-1", "US", payload), "unknown_execution: lost in a restore", 1),
                DeadLetterOrder(
                    Delivery("1-2", "US", {"bad": True}), "invalid_message: payload lacks ids", 1
                ),
            ],
            now(),
        )
    listed = (await client.get("/admin/ops/dead-letters", headers=auth("operator"))).json()
    assert listed["total"] == 2
    newest, oldest = listed["dead_letters"]
    assert oldest["execution_id"] == execution_id and oldest["error_code"] == "unknown_execution"

    assert (
        await client.post("/admin/ops/dead-letters/requeue", json={}, headers=auth("operator"))
    ).status_code == 400
    answer = (
        await client.post("/admin/ops/dead-letters/requeue", json={"region": "US"}, headers=auth("operator"))
    ).json()
    assert answer["requeued"] == [oldest["id"]]
    assert [s["id"] for s in answer["skipped"]] == [newest["id"]]
    remaining = (await client.get("/admin/ops/dead-letters", headers=auth("operator"))).json()
    assert [d["id"] for d in remaining["dead_letters"]] == [newest["id"]]

    pipeline = Pipeline.embedded(runtime)
    await pipeline.start()
    try:
        await wait_for_jobs(runtime.db, ["dl"], timeout_s=30)
    finally:
        await pipeline.stop(timeout_s=10)

    assert (
        await client.post(
            "/admin/ops/dead-letters/purge", json={"ids": [newest["id"]]}, headers=auth("operator")
        )
    ).status_code == 403
    purged = await client.post(
        "/admin/ops/dead-letters/purge", json={"ids": [newest["id"]]}, headers=auth("admin")
    )
    assert purged.json()["purged"] == 1
    everything = (
        await client.get(
            "/admin/ops/dead-letters", params={"include_requeued": True}, headers=auth("operator")
        )
    ).json()
    assert [d["id"] for d in everything["dead_letters"]] == [oldest["id"]]


async def test_workers_are_listed_drained_and_started_again(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime, pipeline: Pipeline
) -> None:
    async def three_live() -> bool:
        found = (await client.get("/admin/ops/workers", headers=auth("operator"))).json()["workers"]
        return len(found) == 3

    await wait_until(three_live, timeout_s=10, what="three live workers")
    found = (await client.get("/admin/ops/workers", headers=auth("operator"))).json()["workers"]
    us = next(w for w in found if w["region"] == "US")
    assert us["live"] and us["state"] == "running" and us["heartbeat_age_s"] < 1

    drained = await client.post(f"/admin/ops/workers/{us['id']}/drain", headers=auth("operator"))
    assert drained.status_code == 200 and drained.json()["state"] == "draining"

    async def us_gone() -> bool:
        found = (await client.get("/admin/ops/workers", headers=auth("operator"))).json()["workers"]
        return all(w["region"] != "US" for w in found)

    await wait_until(us_gone, timeout_s=10, what="the US worker to stop")
    everyone = (await client.get("/admin/ops/workers", params={"all": True}, headers=auth("operator"))).json()
    assert next(w for w in everyone["workers"] if w["id"] == us["id"])["state"] == "stopped"
    again = await client.post(f"/admin/ops/workers/{us['id']}/drain", headers=auth("operator"))
    assert again.status_code == 409 and again.json()["code"] == "worker_stopped"
    assert (await client.post("/admin/ops/workers/nobody/drain", headers=auth("operator"))).status_code == 404

    started = await client.post(f"/admin/ops/workers/{us['id']}/start", headers=auth("operator"))
    assert started.status_code == 202 and started.json() == {"region": "US", "started": True}
    await client.post("/api/v1/jobs", content=sign(job("after-restart")), headers=JSON)
    assert await wait_for_jobs(runtime.db, ["after-restart"], timeout_s=30) == {"after-restart": "completed"}


async def test_backup_downloads_a_complete_file(client: httpx.AsyncClient, sign: Sign) -> None:
    await client.post("/api/v1/jobs", content=sign(job("backed-up")), headers=JSON)
    assert (await client.post("/admin/ops/backup", headers=auth("operator"))).status_code == 403
    answer = await client.post("/admin/ops/backup", headers=auth("admin"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/gzip"
    lines = [json.loads(line) for line in gzip.decompress(answer.content).splitlines()]
    assert lines[0]["format"] == "beacon-backup/v1" and lines[-1]["end"] is True
    assert lines[-1]["counts"]["jobs"] == 1 and lines[-1]["counts"]["executions"] == 1
