"""/health and /health/ready against real components, including unreachable ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from beacon.api import create_app
from beacon.api.routes import health as health_routes
from beacon.boot import open_runtime
from beacon.runtime import Runtime


async def test_health_lists_the_database_and_registered_components(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    async def queue() -> dict[str, Any]:
        return {"status": "up", "depth": 0}

    runtime.health_checks["queue"] = queue
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["components"]["database"]["status"] == "up"
    assert body["components"]["queue"]["depth"] == 0
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert (await client.get("/health/live")).json() == {"status": "alive"}


async def test_a_down_queue_makes_the_runner_unready(client: httpx.AsyncClient, runtime: Runtime) -> None:
    async def queue() -> dict[str, Any]:
        raise ConnectionRefusedError("redis://secret@queue:6379")

    runtime.health_checks["queue"] = queue
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["blocking"] == ["queue"]
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["components"]["queue"] == {
        "status": "down",
        "error": "ConnectionRefusedError",
        "latency_ms": health.json()["components"]["queue"]["latency_ms"],
    }
    assert "secret" not in health.text


async def test_a_non_critical_component_only_degrades(client: httpx.AsyncClient, runtime: Runtime) -> None:
    async def ipfs() -> dict[str, Any]:
        return {"status": "down"}

    runtime.health_checks["ipfs"] = ipfs
    assert (await client.get("/health/ready")).status_code == 200
    health = await client.get("/health")
    assert (health.status_code, health.json()["status"]) == (200, "degraded")


async def test_a_hanging_check_is_reported_down_in_bounded_time(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health_routes, "CHECK_TIMEOUT_S", 0.2)

    async def stuck() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"status": "up"}

    runtime.health_checks["workers"] = stuck
    runtime.health_checks["queue"] = stuck
    response = await asyncio.wait_for(client.get("/health/ready"), timeout=5)
    assert response.status_code == 503
    components = response.json()["components"]
    assert (components["database"], components["workers"], components["queue"]) == ("up", "down", "down")


@pytest.fixture
async def unreachable_db_client(make_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url="postgresql://postgres@127.0.0.1:9/nowhere")
    async with open_runtime(settings, migrate=False, publish_checkpoints=False) as runtime:
        transport = httpx.ASGITransport(app=create_app(settings, runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_an_unreachable_database_is_503_and_never_500(unreachable_db_client: httpx.AsyncClient) -> None:
    ready = await unreachable_db_client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["blocking"] == ["database"]
    assert (await unreachable_db_client.get("/health")).json()["status"] == "unhealthy"
    job = await unreachable_db_client.get("/api/v1/jobs/some-job")
    assert job.status_code == 503
    assert job.json()["code"] == "dependency_unavailable"
    assert job.headers["retry-after"] == "2"
