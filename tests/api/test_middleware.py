"""The HTTP edge: request ids, CORS (errors included), security headers, body limits, access log, 500s."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from beacon.config import Settings
from beacon.logging import JsonFormatter, RedactingFilter, RequestIdFilter, TextFormatter, redact
from tests.api.conftest import MINIMAL, TOKENS, auth

PORTAL = "https://projectbeacon.netlify.app"
EVIL = "https://projectbeacon.netlify.app.evil.example"


async def test_request_ids_are_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/api/v1/questions", headers={"X-Request-ID": "day1-run-42"})
    assert echoed.headers["x-request-id"] == "day1-run-42"
    generated = await client.get("/api/v1/questions")
    assert len(generated.headers["x-request-id"]) == 32
    for hostile in ("x" * 129, "has space", "semi;colon", '"quoted"'):
        replaced = await client.get("/api/v1/questions", headers={"X-Request-ID": hostile})
        assert replaced.headers["x-request-id"] != hostile
    missing = await client.get("/api/v1/jobs/nope", headers={"X-Request-ID": "trace-7"})
    assert missing.json()["request_id"] == "trace-7"


async def test_the_plans_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/jobs",
        headers={
            "Origin": PORTAL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Idempotency-Key, Authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == PORTAL
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods >= {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert allowed >= {"content-type", "authorization", "idempotency-key"}
    assert "origin" in response.headers["vary"].lower()
    assert response.headers.get("access-control-allow-origin") != "*"


async def test_an_unlisted_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/api/v1/jobs", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403
    assert preflight.json()["code"] == "cors_origin_not_allowed"
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    simple = await client.get("/api/v1/questions", headers={"Origin": EVIL})
    assert simple.status_code == 200
    assert not any(name.startswith("access-control-") for name in simple.headers)


async def test_cors_headers_are_on_errors_too(
    client: httpx.AsyncClient, sign: Callable[[dict[str, Any]], bytes]
) -> None:
    origin = {"Origin": PORTAL}
    responses = [
        await client.get("/api/v1/jobs/nope", headers=origin),  # 404
        await client.get("/admin/config", headers=origin),  # 401
        await client.put("/admin/config", json={}, headers={**origin, **auth("operator")}),  # 403
        await client.post(
            "/api/v1/jobs", content=b"x", headers={**origin, "Content-Type": "text/plain"}
        ),  # 415
        await client.post(
            "/api/v1/jobs",
            content=b"x" * (1 << 20 | 1),
            headers={**origin, "Content-Type": "application/json"},
        ),  # 413
        await client.post(
            "/api/v1/jobs",
            content=json.dumps(MINIMAL).encode(),
            headers={**origin, "Content-Type": "application/json", "Idempotency-Key": "cors-check-001"},
        ),  # 400 (the plan's CORS check: unsigned)
    ]
    assert [r.status_code for r in responses] == [404, 401, 403, 415, 413, 400]
    for response in responses:
        assert response.headers["access-control-allow-origin"] == PORTAL, response.status_code
        assert "x-request-id" in response.headers.get("access-control-expose-headers", "").lower()
        assert response.headers["content-type"] == "application/problem+json"


async def test_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/questions")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "strict-transport-security" not in response.headers  # plain http: HSTS would be a lie
    # Issue 16, item 8: no page that loads Swagger UI from a CDN; the document is served as JSON.
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert (await client.get(page)).status_code == 404
    document = await client.get("/openapi.json")
    assert document.status_code == 200 and "cdn.jsdelivr.net" not in document.text


async def test_hsts_over_https(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://runner") as secure:
        response = await secure.get("/api/v1/questions")
    assert response.headers["strict-transport-security"].startswith("max-age=")


@pytest.fixture
def failing_app(app: FastAPI) -> FastAPI:
    @app.get("/test/crash")
    async def crash() -> None:
        raise RuntimeError("boom with Bearer " + TOKENS["admin"])

    @app.get("/test/db-down")
    async def db_down() -> None:
        raise ConnectionRefusedError("connection refused")

    return app


async def test_an_unexpected_error_is_a_500_problem_with_all_headers(
    failing_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=failing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/test/crash", headers={"Origin": PORTAL, "X-Request-ID": "crash-1"})
        down = await http.get("/test/db-down")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.json()["request_id"] == "crash-1"
    assert response.headers["access-control-allow-origin"] == PORTAL
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "boom" not in response.text
    assert (down.status_code, down.json()["code"]) == (503, "dependency_unavailable")


async def test_the_access_log_names_route_status_and_actor(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="beacon.access"):
        await client.get("/api/v1/jobs/some-id", headers={**auth("viewer"), "X-Request-ID": "log-1"})
        await client.get("/auth/whoami", headers=auth("viewer"))
    records = [r for r in caplog.records if r.name == "beacon.access"]
    assert [r.route for r in records] == ["/api/v1/jobs/{job_id}", "/auth/whoami"]  # type: ignore[attr-defined]
    assert records[0].status == 404  # type: ignore[attr-defined]
    assert records[1].actor.startswith("viewer:")  # type: ignore[attr-defined]
    assert TOKENS["viewer"] not in caplog.text


def test_release_mode_logs_one_json_object_per_line_with_the_request_id() -> None:
    from beacon.logging import request_id_var

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("beacon.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id_var.set("req-99")
    try:
        logger.info("called %s with Bearer %s", "/admin", "s3cr3t-token", extra={"status": 200})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] == "req-99"
    assert entry["status"] == 200
    assert entry["level"] == "info"
    assert entry["msg"] == "called /admin with Bearer ****"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("postgresql://beacon:hunter2@db:5432/beacon", "hunter2"),
        ("ADMIN_TOKENS=tok1,tok2", "tok1"),
        ("yagna appkey=0xdeadbeef", "0xdeadbeef"),
    ],
)
def test_redaction(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_configure_logging_switches_to_json_in_release_mode(make_settings: Callable[..., Settings]) -> None:
    from beacon.logging import configure_logging

    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        configure_logging(make_settings(mode="release"))
        ours = [h for h in root.handlers if h.get_name() == "beacon"]
        assert len(ours) == 1
        assert isinstance(ours[0].formatter, JsonFormatter)
        configure_logging(make_settings(mode="release"))  # idempotent
        assert len([h for h in root.handlers if h.get_name() == "beacon"]) == 1
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)


async def test_a_forged_access_log_line_cannot_be_written_through_a_path(client: httpx.AsyncClient) -> None:
    # Issue 16, item 5: "%0A" in the path wrote a second, forged beacon.access line in text mode.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    access = logging.getLogger("beacon.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        await client.get("/x%0A12:00:00%20INFO%20%20%20%20beacon.access:%20POST%20/admin/config%20200")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "GET /x\\n12:00:00 INFO" in lines[0]
