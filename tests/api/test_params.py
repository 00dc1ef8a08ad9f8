"""Identifiers and filters are checked at the edge, one rule per kind, on SQLite and PostgreSQL.

Issue 16, item 4: on PostgreSQL a NUL byte in any identifier reached asyncpg and came back as a 500
(CharacterNotInRepertoireError); on SQLite the same request was a 404 or an empty page.
"""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest
import sqlalchemy as sa
from starlette.requests import Request

from beacon.api.problems import problem_for_exception
from beacon.runtime import Runtime
from beacon.store.tables import jobs
from tests.api.conftest import auth


@pytest.fixture
def store_url(database_url: str) -> str:
    return database_url


def cursor_of(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/jobs?status=%00"),
        ("GET", "/api/v1/jobs?status=running-ish"),
        ("GET", "/api/v1/jobs?cursor=%00"),
        ("GET", f"/api/v1/jobs?cursor={cursor_of([1.0, 'a' + chr(0) + 'b'])}"),
        ("GET", "/api/v1/jobs/a%00b"),
        ("GET", "/api/v1/diffs/a%00b"),
        ("POST", "/api/v1/diffs/a%00b"),
        ("GET", "/api/v1/executions?job_id=%00x"),
        ("GET", "/api/v1/executions?region=%00"),
        ("GET", "/api/v1/executions?region=MARS"),
        ("GET", "/api/v1/executions/x%00y"),
        ("GET", "/api/v1/executions/x%00y/receipt"),
        ("GET", "/api/v1/transparency/bundles/bafy%00x"),
        ("GET", "/admin/ops/workers?region=%00"),
        ("GET", "/admin/ops/dead-letters?region=%0A"),
        ("POST", "/admin/ops/workers/x%00y/drain"),
        ("POST", "/admin/ops/workers/x%00y/stop"),
    ],
)
async def test_malformed_identifiers_and_filters_are_400(
    client: httpx.AsyncClient, method: str, url: str
) -> None:
    response = await client.request(method, url, headers=auth("admin"))
    assert response.status_code == 400, response.text
    assert response.json()["code"] in ("invalid_request", "invalid_cursor", "unknown_region")


async def test_well_formed_unknown_identifiers_are_still_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/jobs/no-such-job")).status_code == 404
    assert (await client.get("/api/v1/executions/ex_0123abc")).status_code == 404
    assert (
        await client.post("/admin/ops/workers/us-host-1-abc/drain", headers=auth("admin"))
    ).status_code == 404
    assert (await client.get("/api/v1/executions?region=eu-west")).status_code == 200  # an alias


async def test_every_string_parameter_states_its_rule(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    loose = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] not in ("path", "query"):
                    continue
                schemas = parameter["schema"].get("anyOf", [parameter["schema"]])
                for schema in schemas:
                    if schema.get("type") == "string" and not {"pattern", "enum", "const"} & set(schema):
                        loose.append(f"{method.upper()} {path} {parameter['name']}")
    assert loose == []


async def test_a_database_data_error_is_a_400_not_a_500(runtime: Runtime) -> None:
    # The backstop, with the driver's real error where the store has one (PostgreSQL refuses NUL).
    try:
        async with runtime.db.connect() as conn:
            await conn.execute(sa.select(jobs.c.id).where(jobs.c.id == "a\x00b"))
    except Exception as exc:
        problem = problem_for_exception(
            Request({"type": "http", "method": "GET", "path": "/x", "headers": []}), exc
        )
        assert (problem.status, problem.code) == (400, "invalid_value")
    else:
        assert not runtime.settings.effective_database_url.startswith("postgresql")
