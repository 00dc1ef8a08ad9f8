"""Every error code the API core can answer, over HTTP, as a problem+json document."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from beacon.api.problems import problem_for_exception
from tests.api.conftest import MINIMAL, auth

Sign = Callable[[dict[str, Any]], bytes]
JSON = {"Content-Type": "application/json"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["type"] == f"urn:beacon:problem:{code}"
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


BIAS = {"id": "bias", "version": "1", "benchmark": {"name": "bias-detection", "container": {"image": "x"}}}


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({**MINIMAL, "questions": ["identity_basic"]}, "invalid_questions"),
        ({**MINIMAL, "constraints": {"regions": ["EU"], "min_regions": 3}}, "invalid_constraints"),
        (
            {
                **BIAS,
                "constraints": {"regions": ["US", "EU", "ASIA"]},
                "options": {"prompt_context": "both"},
                "models": [f"model-{i}" for i in range(25)],
            },
            "too_many_executions",
        ),
    ],
)
async def test_planning_refusals(
    client: httpx.AsyncClient, sign: Sign, document: dict[str, Any], code: str
) -> None:
    assert_problem(await client.post("/api/v1/jobs", content=sign(document), headers=JSON), 400, code)


async def test_allowed_submitters_are_enforced(client: httpx.AsyncClient, sign: Sign) -> None:
    change = {"security": {"allowed_submitter_keys": ["someone-else"]}}
    assert (await client.put("/admin/config", json=change, headers=auth("admin"))).status_code == 200
    assert_problem(
        await client.post("/api/v1/jobs", content=sign(MINIMAL), headers=JSON), 400, "key_not_allowed"
    )
    change = {"security": {"allowed_submitter_keys": ["dev"]}}  # the kid of the trusted test key
    assert (await client.put("/admin/config", json=change, headers=auth("admin"))).status_code == 200
    assert (await client.post("/api/v1/jobs", content=sign(MINIMAL), headers=JSON)).status_code == 202


async def test_paused_submissions_over_http(client: httpx.AsyncClient, sign: Sign) -> None:
    await client.put("/admin/config", json={"submissions_paused": True}, headers=auth("admin"))
    response = await client.post("/api/v1/jobs", content=sign(MINIMAL), headers=JSON)
    assert_problem(response, 503, "submissions_paused")
    assert response.headers["retry-after"] == "60"


async def test_deliberate_refusals_log_a_warning_with_their_code_and_request_id(
    client: httpx.AsyncClient, sign: Sign, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 16, item 8: a paused 503 was logged at ERROR; a log check keyed on request ids needs each.
    await client.put("/admin/config", json={"submissions_paused": True}, headers=auth("admin"))
    await client.put("/admin/config", json={"rate_limits": {"default_per_minute": 1}}, headers=auth("admin"))
    with caplog.at_level(logging.INFO, logger="beacon.api"):
        sent = [
            (
                "submissions_paused",
                503,
                await client.post(
                    "/api/v1/jobs", content=sign(MINIMAL), headers={**JSON, "X-Request-ID": "h-paused"}
                ),
            ),
            (
                "invalid_request",
                400,
                await client.get(
                    "/admin/config/versions?limit=abc", headers={**auth("admin"), "X-Request-ID": "h-bad"}
                ),
            ),
        ]
        await client.get("/api/v1/questions")
        sent.append(
            (
                "rate_limited",
                429,
                await client.get("/api/v1/questions", headers={"X-Request-ID": "h-limited"}),
            )
        )
    problems = {
        r.request_id: r for r in caplog.records if r.name == "beacon.api" and r.msg.startswith("problem")
    }  # type: ignore[attr-defined]
    for code, status, response in sent:
        assert response.status_code == status
        record = problems[response.headers["x-request-id"]]
        assert (record.levelno, record.code, record.status) == (logging.WARNING, code, status)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_unknown_paths_and_methods(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404, "not_found")
    response = await client.delete("/api/v1/questions")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_malformed_bodies_and_parameters(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/api/v1/jobs", content=b"{oops", headers=JSON), 400, "invalid_json")
    assert_problem(await client.post("/api/v1/jobs", content=b"[1]", headers=JSON), 400, "invalid_body")
    body = assert_problem(
        await client.get("/admin/config/versions?limit=abc", headers=auth("admin")), 400, "invalid_request"
    )
    assert body["errors"][0]["path"] == "query.limit"


def test_numbers_the_database_cannot_hold_are_client_errors() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""})
    try:
        raise RuntimeError("statement failed") from OverflowError(
            "Python int too large to convert to SQLite INTEGER"
        )
    except RuntimeError as exc:
        problem = problem_for_exception(request, exc)
    assert (problem.status, problem.code) == (400, "value_out_of_range")
    assert problem_for_exception(request, ValueError("bug")).status == 500
