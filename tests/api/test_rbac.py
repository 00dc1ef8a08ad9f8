"""The RBAC matrix: every route of the app, every role.

The minimum role of a route is read from its dependencies (``require(Role.X)``), so routes other
subsystems add are covered too. Below the minimum: 401 without a token, 403 with one; at or above
it: never 401/403. Unknown and malformed tokens are 401 on every route that looks at the caller.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from beacon.api.auth import Role, minimum_role
from beacon.api.routing import api_routes
from tests.api.conftest import auth

ROLES = {"admin": Role.ADMIN, "operator": Role.OPERATOR, "viewer": Role.VIEWER, None: Role.ANONYMOUS}

# Routes this module must find (it fails if they disappear or change their required role).
EXPECTED = {
    ("GET", "/health"): Role.ANONYMOUS,
    ("GET", "/health/ready"): Role.ANONYMOUS,
    ("GET", "/health/live"): Role.ANONYMOUS,
    ("GET", "/metrics"): Role.ANONYMOUS,
    ("GET", "/auth/whoami"): Role.ANONYMOUS,
    ("GET", "/admin/config"): Role.OPERATOR,
    ("PUT", "/admin/config"): Role.ADMIN,
    ("POST", "/admin/config/revert"): Role.ADMIN,
    ("GET", "/admin/config/versions"): Role.OPERATOR,
    ("GET", "/admin/audit"): Role.ADMIN,
    ("POST", "/api/v1/jobs"): Role.ANONYMOUS,
    ("GET", "/api/v1/jobs"): Role.ANONYMOUS,
    ("GET", "/api/v1/jobs/{job_id}"): Role.ANONYMOUS,
    ("GET", "/api/v1/questions"): Role.ANONYMOUS,
}


def routes(app: FastAPI) -> list[tuple[str, str, Role]]:
    found = []
    for info in api_routes(app):
        if info.dependant is None or not info.route.include_in_schema:
            continue  # the docs pages
        role = minimum_role(info.dependant) or Role.ANONYMOUS
        found += [(method, info.path, role) for method in sorted(info.methods - {"HEAD"})]
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "rbac-probe", path)


async def call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {"content": b"{}", "headers": {**headers, "Content-Type": "application/json"}}
    if method in ("GET", "DELETE", "HEAD"):
        return await client.request(method, concrete(path), headers=headers)
    return await client.request(method, concrete(path), **body)  # type: ignore[arg-type]


def test_the_matrix_knows_the_routes(app: FastAPI) -> None:
    table = {(method, path): role for method, path, role in routes(app)}
    for key, role in EXPECTED.items():
        assert table.get(key) == role, f"{key}: expected {role.label}, found {table.get(key)}"


@pytest.mark.parametrize("caller", ["admin", "operator", "viewer", None])
async def test_every_route_admits_exactly_the_roles_it_requires(
    app: FastAPI, client: httpx.AsyncClient, caller: str | None
) -> None:
    role = ROLES[caller]
    checked = 0
    for method, path, minimum in routes(app):
        response = await call(client, method, path, auth(caller))
        where = f"{method} {path} as {caller or 'anonymous'}: {response.status_code} {response.text[:200]}"
        if role >= minimum:
            assert response.status_code not in (401, 403), where
        elif role is Role.ANONYMOUS:
            assert response.status_code == 401, where
            assert response.json()["code"] == "authentication_required", where
            assert "www-authenticate" in response.headers, where
        else:
            assert response.status_code == 403, where
            assert response.json()["code"] == "forbidden", where
        assert response.status_code < 500, where
        checked += 1
    assert checked >= len(EXPECTED)


@pytest.mark.parametrize(
    ("header", "code"),
    [("Bearer not-a-configured-token", "invalid_token"), ("Basic YWRtaW46YWRtaW4=", "invalid_authorization")],
)
async def test_bad_credentials_are_401_wherever_the_caller_matters(
    app: FastAPI, client: httpx.AsyncClient, header: str, code: str
) -> None:
    for method, path, minimum in routes(app):
        if minimum is Role.ANONYMOUS and path != "/auth/whoami":
            continue
        response = await call(client, method, path, {"Authorization": header})
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.json()["code"] == code
