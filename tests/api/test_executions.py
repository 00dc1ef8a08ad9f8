"""Executions, receipts, keys and cancel over HTTP, with a real pipeline behind the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from beacon.runtime import Runtime
from beacon.verify import verify_receipt
from beacon.worker.service import Pipeline
from tests.api.conftest import auth
from tests.pipeline_support import wait_for_jobs

Sign = Callable[[dict[str, Any]], bytes]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def store_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"heartbeat_interval_s": 0.1, "worker_lease_s": 0.6, "cancel_wait_s": 5.0}


@pytest.fixture
async def pipeline(runtime: Runtime, app: FastAPI) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline.embedded(runtime)
    app.state.pipeline = pipeline  # what create_app(..., pipeline=) does in `beacon serve`
    await pipeline.start()
    yield pipeline
    await pipeline.stop(timeout_s=10)


def noop_job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "version": "1",
        "benchmark": "noop",
        "container": {"image": "noop"},
        "constraints": {"regions": ["US", "EU"]},
        **extra,
    }


async def test_executions_list_with_total_and_read_one_with_its_receipt(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime, pipeline: Pipeline
) -> None:
    for n in range(3):
        response = await client.post("/api/v1/jobs", content=sign(noop_job(f"api-{n}")), headers=JSON)
        assert response.status_code == 202, response.text
    await wait_for_jobs(runtime.db, [f"api-{n}" for n in range(3)], timeout_s=30)

    page = (await client.get("/api/v1/executions", params={"limit": 4})).json()
    assert (page["total"], page["limit"], page["offset"], len(page["executions"])) == (6, 4, 0, 4)
    rest = (await client.get("/api/v1/executions", params={"limit": 4, "offset": 4})).json()
    ids = [e["id"] for e in page["executions"] + rest["executions"]]
    assert len(set(ids)) == 6
    first = page["executions"][0]
    assert (
        first["status"] == "completed"
        and first["has_receipt"]
        and first["completed_at"] == first["finished_at"]
    )
    only = (await client.get("/api/v1/executions", params={"job_id": "api-1", "region": "eu"})).json()
    assert only["total"] == 1 and only["executions"][0]["region"] == "EU"

    one = (await client.get(f"/api/v1/executions/{first['id']}")).json()
    assert one["receipt"]["receipt_id"] == one["receipt_id"] and one["output"] == ""
    receipt = (await client.get(f"/api/v1/executions/{first['id']}/receipt")).json()
    assert receipt == one["receipt"]
    keys = (await client.get("/api/v1/keys")).json()["keys"]
    assert keys[0]["current"] and keys[0]["kid"] == receipt["kid"]
    verify_receipt(receipt, keys[0]["public_key"])  # what an auditor does with the public key


async def test_unknown_executions_and_bad_parameters_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/executions/ex_nope")
    assert missing.status_code == 404 and missing.json()["code"] == "execution_not_found"
    assert missing.headers["content-type"].startswith("application/problem+json")
    receipt = await client.get("/api/v1/executions/ex_nope/receipt")
    assert receipt.status_code == 404
    for params in ({"limit": 0}, {"limit": 10_000}, {"offset": -1}, {"status": "weird"}):
        bad = await client.get("/api/v1/executions", params=params)
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_request", params


async def test_a_receipt_is_not_there_before_the_execution_ends(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime
) -> None:
    await client.post("/api/v1/jobs", content=sign(noop_job("waiting")), headers=JSON)  # no workers running
    listed = (await client.get("/api/v1/executions", params={"job_id": "waiting"})).json()
    execution = listed["executions"][0]
    answer = await client.get(f"/api/v1/executions/{execution['id']}/receipt")
    assert answer.status_code == 404 and answer.json()["code"] == "receipt_not_ready"


async def test_cancel_needs_an_operator_and_ends_a_queued_job(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime
) -> None:
    await client.post("/api/v1/jobs", content=sign(noop_job("to-cancel")), headers=JSON)  # no workers
    assert (await client.post("/api/v1/jobs/to-cancel/cancel")).status_code == 401
    assert (await client.post("/api/v1/jobs/to-cancel/cancel", headers=auth("viewer"))).status_code == 403
    answer = await client.post("/api/v1/jobs/to-cancel/cancel", headers=auth("operator"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (
        body["status"] == "cancelled"
        and len(body["cancelled_executions"]) == 2
        and body["still_running"] == []
    )
    job = (await client.get("/api/v1/jobs/to-cancel", params={"include": "executions"})).json()
    assert job["status"] == "cancelled" and [e["status"] for e in job["executions"]] == ["cancelled"] * 2
    assert [event["status"] for event in job["timeline"]][-1] == "cancelled"
    again = await client.post("/api/v1/jobs/to-cancel/cancel", headers=auth("operator"))
    assert again.status_code == 200 and again.json()["already_requested"]
    missing = await client.post("/api/v1/jobs/nope/cancel", headers=auth("operator"))
    assert missing.status_code == 404 and missing.json()["code"] == "job_not_found"


async def test_cancelling_a_finished_job_is_a_conflict(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime, pipeline: Pipeline
) -> None:
    await client.post("/api/v1/jobs", content=sign(noop_job("done")), headers=JSON)
    await wait_for_jobs(runtime.db, ["done"], timeout_s=30)
    answer = await client.post("/api/v1/jobs/done/cancel", headers=auth("operator"))
    assert answer.status_code == 409 and answer.json()["code"] == "job_terminal"
    assert answer.json()["job_status"] == "completed"


async def test_the_job_timeline_reads_created_enqueued_executing_completed(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime, pipeline: Pipeline
) -> None:
    await client.post("/api/v1/jobs", content=sign(noop_job("timeline")), headers=JSON)
    await wait_for_jobs(runtime.db, ["timeline"], timeout_s=30)
    await asyncio.sleep(0)
    job = (await client.get("/api/v1/jobs/timeline", params={"include": "executions"})).json()
    states = [event["status"] for event in job["timeline"] if event["status"] != "published"]
    assert states == ["created", "enqueued", "executing", "completed"]
    published = [event for event in job["timeline"] if event["status"] == "published"]  # the relay's own
    assert sorted(event["detail"]["region"] for event in published) == ["EU", "US"]
    assert all(event["at"] >= job["timeline"][1]["at"] for event in published)
    assert [event["at"] for event in job["timeline"]] == sorted(event["at"] for event in job["timeline"])
    assert job["timeline"][-1]["detail"]["success_rate"] == 1.0
    assert all(e["receipt"] and e["status"] == "completed" for e in job["executions"])
