"""Rate limiting: GCRA in memory and in Redis, per client and route, headers, the zero-quota halt."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from beacon.api.ratelimit import MemoryLimiter, RedisLimiter, gcra
from beacon.metrics import RATE_LIMITER_ERRORS
from beacon.runtime import Runtime
from tests.api.conftest import MINIMAL, auth


def test_gcra_allows_a_burst_of_the_quota_then_one_per_interval() -> None:
    limiter = MemoryLimiter()
    now = 1000.0
    decisions = [limiter.hit_now("k", 6, now) for _ in range(6)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [5, 4, 3, 2, 1, 0]
    refused = limiter.hit_now("k", 6, now)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(10.0)  # 60 s / 6
    assert not limiter.hit_now("k", 6, now + 9.9).allowed
    assert limiter.hit_now("k", 6, now + 10.0).allowed
    assert limiter.hit_now("other", 6, now).remaining == 5


def test_a_zero_quota_refuses_everything() -> None:
    decision, _ = gcra(None, 0.0, 0)
    assert not decision.allowed
    headers = decision.headers("submit")
    assert headers["RateLimit-Policy"] == '"submit";q=0;w=60'
    assert headers["Retry-After"] == "60"


def test_headers_follow_the_ietf_draft_and_the_legacy_names() -> None:
    decision, _ = gcra(None, 0.0, 600)
    assert decision.headers("default") == {
        "RateLimit-Policy": '"default";q=600;w=60',
        "RateLimit": '"default";r=599;t=1',
        "X-RateLimit-Limit": "600",
        "X-RateLimit-Remaining": "599",
        "X-RateLimit-Reset": "1",
    }


async def test_redis_limits_are_shared_between_processes(redis_url: str, redis_prefix: str) -> None:
    first, second = RedisLimiter(redis_url, redis_prefix), RedisLimiter(redis_url, redis_prefix)
    try:
        outcomes = [(await (first if i % 2 else second).hit("client:route", 5)).allowed for i in range(6)]
        assert outcomes == [True] * 5 + [False]
        refused = await first.hit("client:route", 5)
        assert 0 < refused.retry_after_s <= 12.0
        assert refused.remaining == 0
        assert (await first.hit("another-client:route", 5)).remaining == 4
    finally:
        await first.aclose()
        await second.aclose()


async def test_when_redis_fails_the_limits_hold_in_memory() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:9/0", "beacon-test-down", timeout_s=0.2)
    errors_before = RATE_LIMITER_ERRORS._value.get()
    try:
        outcomes = [(await limiter.hit("c", 3)).allowed for _ in range(4)]
    finally:
        await limiter.aclose()
    assert outcomes == [True, True, True, False]
    assert RATE_LIMITER_ERRORS._value.get() == errors_before + 1  # one failure, then memory for a while


@pytest.fixture(params=["memory", "redis"])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The HTTP tests run embedded (in-memory limiter) and in service mode (Redis)."""
    if request.param == "memory":
        return {}
    return {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": request.getfixturevalue("redis_prefix"),
    }


async def set_limits(client: httpx.AsyncClient, **limits: int) -> None:
    response = await client.put("/admin/config", json={"rate_limits": limits}, headers=auth("admin"))
    assert response.status_code == 200, response.text


async def test_over_the_limit_is_a_429_problem_with_headers(client: httpx.AsyncClient) -> None:
    await set_limits(client, default_per_minute=3)
    ok = [await client.get("/api/v1/questions") for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining"] for r in ok] == ["2", "1", "0"]
    assert ok[0].headers["ratelimit-policy"] == '"default";q=3;w=60'
    refused = await client.get("/api/v1/questions", headers={"Origin": "https://projectbeacon.netlify.app"})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert refused.headers["ratelimit"].startswith('"default";r=0;')
    assert refused.headers["access-control-allow-origin"] == "https://projectbeacon.netlify.app"
    # Per route: another route has its own budget. Per client: a token is its own client.
    assert (await client.get("/api/v1/jobs")).status_code == 200
    assert (await client.get("/api/v1/questions", headers=auth("viewer"))).status_code == 200
    # Health probes and metrics are never limited.
    assert [(await client.get("/health/live")).status_code for _ in range(5)] == [200] * 5
    assert "ratelimit" not in (await client.get("/health/live")).headers


async def test_a_zero_submit_limit_halts_submissions_only(
    client: httpx.AsyncClient, sign: Callable[[dict[str, Any]], bytes]
) -> None:
    await set_limits(client, submit_per_minute=0)
    response = await client.post(
        "/api/v1/jobs", content=sign(MINIMAL), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 429
    assert "halted" in response.json()["detail"]
    assert response.headers["ratelimit-policy"] == '"submit";q=0;w=60'
    assert (await client.get("/api/v1/jobs")).status_code == 200
    await set_limits(client, submit_per_minute=10)
    again = await client.post(
        "/api/v1/jobs", content=sign(MINIMAL), headers={"Content-Type": "application/json"}
    )
    assert again.status_code == 202


async def test_service_mode_limits_in_redis(app: FastAPI, runtime: Runtime) -> None:
    assert isinstance(app.state.rate_limiter, RedisLimiter if runtime.settings.redis_url else MemoryLimiter)


# --- X-Forwarded-For is believed only from a configured proxy (issue 16, item 2) ------------------


async def forwarded_clients(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, forwarded: list[str]
) -> tuple[list[int], list[str]]:
    """Statuses of GETs sent with these X-Forwarded-For values, and the clients the access log names."""
    await set_limits(client, default_per_minute=2)
    with caplog.at_level(logging.INFO, logger="beacon.access"):
        statuses = [
            (await client.get("/api/v1/questions", headers={"X-Forwarded-For": value})).status_code
            for value in forwarded
        ]
    clients = [
        r.client for r in caplog.records if r.name == "beacon.access" and r.route == "/api/v1/questions"
    ]  # type: ignore[attr-defined]
    return statuses, clients


async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    statuses, clients = await forwarded_clients(client, caplog, [f"198.51.100.{i}" for i in range(4)])
    assert statuses == [200, 200, 429, 429]  # no fresh quota per forged address
    assert set(clients) == {"203.0.113.7"}  # the TCP peer of the test transport


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["203.0.113.0/28"]}])
async def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # An appending proxy: whatever the client wrote comes first, the address the proxy saw last.
    forged = [f"10.9.9.{i}, 192.0.2.44" for i in range(3)] + ["6.6.6.6, 192.0.2.44, 203.0.113.9"]
    statuses, clients = await forwarded_clients(client, caplog, forged)
    assert statuses == [200, 200, 429, 429]  # one client, whatever it put on the left
    assert clients == ["192.0.2.44"] * 4  # 203.0.113.9 is a proxy too: skipped
