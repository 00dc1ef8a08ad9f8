"""Jobs over HTTP on SQLite and PostgreSQL: submit, read with timeline and executions, list with cursors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from beacon.runtime import Runtime
from beacon.store.tables import executions, jobs, outbox
from tests.api.conftest import MINIMAL

Sign = Callable[[dict[str, Any]], bytes]
JSON = {"Content-Type": "application/json"}
PROBLEM = "application/problem+json"


@pytest.fixture
def store_url(database_url: str) -> str:
    return database_url


async def submit(client: httpx.AsyncClient, body: bytes, **headers: str) -> httpx.Response:
    return await client.post("/api/v1/jobs", content=body, headers={**JSON, **headers})


async def test_submit_answers_202_with_the_job_and_a_location(client: httpx.AsyncClient, sign: Sign) -> None:
    response = await submit(client, sign(MINIMAL))
    assert response.status_code == 202, response.text
    assert response.headers["location"] == "/api/v1/jobs/day1-minimal"
    body = response.json()
    assert (body["id"], body["job_id"], body["status"], body["scheme"]) == (
        "day1-minimal",
        "day1-minimal",
        "enqueued",
        "jcs",
    )


async def test_unsigned_submission_is_a_400_problem(client: httpx.AsyncClient) -> None:
    unsigned = {
        "id": "job-invalid-unsigned",
        "version": "1",
        "benchmark": "noop",
        "container": {"image": "noop"},
    }
    response = await submit(client, json.dumps(unsigned).encode())
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "signature_missing"
    assert problem["type"] == "urn:beacon:problem:signature_missing"
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_non_json_content_type_is_415(client: httpx.AsyncClient, sign: Sign) -> None:
    response = await client.post(
        "/api/v1/jobs", content=sign(MINIMAL), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    missing = await client.post("/api/v1/jobs", content=sign(MINIMAL), headers={"Content-Type": ""})
    assert missing.status_code == 415


async def test_bodies_over_one_mebibyte_are_413(client: httpx.AsyncClient, sign: Sign) -> None:
    padded = {**MINIMAL, "metadata": {"padding": "x" * (1 << 20)}}
    response = await submit(client, sign(padded))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"

    async def chunks() -> Any:  # no Content-Length: the limit holds while streaming too
        for _ in range(17):
            yield b" " * 65536

    streamed = await client.post("/api/v1/jobs", content=chunks(), headers=JSON)
    assert streamed.status_code == 413


async def test_a_body_just_under_the_limit_reaches_intake(client: httpx.AsyncClient, sign: Sign) -> None:
    base = sign({**MINIMAL, "metadata": {"padding": ""}})
    padded = sign({**MINIMAL, "metadata": {"padding": "x" * ((1 << 20) - len(base) - 64)}})
    assert len(padded) <= 1 << 20
    assert (await submit(client, padded)).status_code == 202


@pytest.mark.parametrize("depth", [300, 2000, 100_000])
async def test_deeply_nested_submissions_are_400_invalid_json(
    client: httpx.AsyncClient, sign: Sign, depth: int
) -> None:
    # Issue 16, item 3: ≥ 942 levels unsigned, ≥ 255 signed were a 500 with a traceback.
    unsigned = b'{"metadata":' + b"[" * depth + b"]" * depth + b"}"
    response = await submit(client, unsigned)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    deep: Any = "x"
    for _ in range(min(depth, 400)):
        deep = {"k": deep}
    response = await submit(client, sign({**MINIMAL, "metadata": {"deep": deep}}))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")


async def test_deep_json_is_refused_at_the_edge_on_every_route(client: httpx.AsyncClient) -> None:
    deep = b'{"to":' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await client.post("/admin/config/revert", content=deep, headers=JSON)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")


async def test_get_job_with_timeline_and_executions(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime
) -> None:
    await submit(client, sign(MINIMAL))
    async with runtime.db.begin() as conn:  # as a worker would leave it
        await conn.execute(
            sa.update(executions).values(status="completed", receipt={"receipt_id": "r-1", "signature": "s"})
        )
    plain = (await client.get("/api/v1/jobs/day1-minimal")).json()
    assert "executions" not in plain or plain["executions"] is None
    assert [event["status"] for event in plain["timeline"]] == ["created", "enqueued"]
    assert plain["spec"]["benchmark"]["container"]["image"] == "noop"
    detail = (await client.get("/api/v1/jobs/day1-minimal?include=executions")).json()
    assert detail["status"] == "enqueued"
    assert detail["total_executions"] == 1
    (execution,) = detail["executions"]
    assert execution["status"] == "completed"
    assert execution["receipt"] == {"receipt_id": "r-1", "signature": "s"}
    assert execution["queued_at"].endswith("Z")


async def test_the_relay_records_when_it_published_and_t0_checks_it(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime
) -> None:
    """T-0's "Observe enqueue process" sees the relay, not intake: no publish, no pass."""
    from beacon.harness.jobs import enqueue_observed, states_in_order, timeline_rows
    from beacon.queue.relay import OutboxRelay

    document = {**MINIMAL, "constraints": {"regions": ["US", "EU"], "min_regions": 2}}
    assert (await submit(client, sign(document))).status_code == 202
    unpublished = (await client.get("/api/v1/jobs/day1-minimal")).json()
    check = enqueue_observed(unpublished)  # a relay that never published
    assert check["passed"] is False
    assert check["actual"]["regions_without_publish"] == ["US", "EU"]

    await OutboxRelay(runtime.db, runtime.queue).publish_batch()
    job = (await client.get("/api/v1/jobs/day1-minimal")).json()
    published = [e for e in job["timeline"] if e["status"] == "published"]
    assert sorted(e["detail"]["region"] for e in published) == ["EU", "US"]
    assert all(
        e["detail"] == {"region": e["detail"]["region"], "messages": 1, "reason": None} for e in published
    )
    check = enqueue_observed(job)
    assert check["passed"] is True, check
    assert check["actual"]["messages_published"] == job["total_executions"] == 2
    assert states_in_order(timeline_rows(job)) == ["created", "enqueued"]  # published is not a job state

    late = {
        **job,
        "timeline": [
            {**e, "at": "2000-01-01T00:00:00Z"} if e["status"] == "published" else e for e in job["timeline"]
        ],
    }
    assert enqueue_observed(late)["passed"] is False  # "published" before intake enqueued: not evidence
    partial = {
        **job,
        "timeline": [
            e for e in job["timeline"] if e.get("detail", {}) is None or e["detail"].get("region") != "EU"
        ],
    }
    assert enqueue_observed(partial)["actual"]["regions_without_publish"] == ["EU"]


async def test_unknown_job_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/jobs/no-such-job")
    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


async def test_bad_query_values_are_400(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/jobs/x?include=everything")).json()["code"] == "invalid_request"
    assert (await client.get("/api/v1/jobs?limit=0")).status_code == 400
    assert (await client.get("/api/v1/jobs?limit=201")).status_code == 400
    response = await client.get("/api/v1/jobs?cursor=not-a-cursor")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")


async def test_list_is_newest_first_with_cursor_pagination(client: httpx.AsyncClient, sign: Sign) -> None:
    for index in range(7):
        assert (await submit(client, sign({**MINIMAL, "id": f"job-{index}"}))).status_code == 202
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/jobs", params=params)).json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"job-{index}" for index in reversed(range(7))]
    filtered = (await client.get("/api/v1/jobs", params={"status": "completed"})).json()
    assert filtered["jobs"] == []


async def test_fifty_concurrent_identical_requests_make_one_job(
    client: httpx.AsyncClient, sign: Sign, runtime: Runtime
) -> None:
    body = sign(MINIMAL)
    responses = await asyncio.gather(
        *(submit(client, body, **{"Idempotency-Key": "day1-001"}) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {202, 409}
    assert statuses.count(202) >= 1
    ids = {r.json()["id"] for r in responses if r.status_code == 202}
    assert ids == {"day1-minimal"}
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "idempotency_in_flight"
            assert response.headers["retry-after"] == "1"
    async with runtime.db.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar_one() == 1
        assert (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one() == 1
    replay = await submit(client, body, **{"Idempotency-Key": "day1-001"})
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (202, "true")
    reused = await submit(client, sign({**MINIMAL, "id": "other"}), **{"Idempotency-Key": "day1-001"})
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
