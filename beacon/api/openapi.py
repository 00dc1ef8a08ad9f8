"""OpenAPI: every route documents its errors as RFC 9457 problems.

Route modules declare their own errors with :func:`problem_responses`::

    @router.get("/api/v1/jobs/{job_id}", responses=problem_responses(404))

and :func:`install_openapi` adds what every route of a kind can answer — 400 where there are
parameters or a body, 401/403 behind ``require(...)``, 413/415 on bodies, 429 where the rate
limiter applies, 500 and 503 everywhere — so ``/openapi.json`` describes every error. It also
declares the bearer-token security scheme, and on each operation whether it needs it
(``security: [{bearerAuth: []}]``) or is public (``security: []``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from beacon.api.problems import PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token of ADMIN_TOKENS, OPERATOR_TOKENS or VIEWER_TOKENS (admin ⊃ operator ⊃ viewer)",
    }
}

_COMPONENT_SCHEMAS: dict[str, Any] = {}


def add_component_schemas(schemas: dict[str, Any]) -> None:
    """Register schemas under ``#/components/schemas`` (for bodies a route reads itself)."""
    _COMPONENT_SCHEMAS.update(schemas)


DESCRIPTIONS = {
    400: "Invalid request (problem+json; `code` says what, `errors` lists paths)",
    401: "Authentication required, or the token is unknown",
    403: "The token's role is not enough",
    404: "Not found",
    409: "Conflict with the current state",
    412: "Precondition failed (If-Match)",
    413: "Request body too large",
    415: "Unsupported media type (send application/json)",
    422: "Unprocessable request",
    429: "Rate limited (see Retry-After and RateLimit headers)",
    500: "Internal error (logged with the request id)",
    503: "A backing service is unavailable, or submissions are paused",
}


class ProblemError(BaseModel):
    path: str = Field(description="Dotted path of the offending field ('$' for the whole document)")
    message: str
    type: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem, as every Beacon error is returned."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="urn:beacon:problem:<code>")
    title: str
    status: int
    code: str = Field(description="Stable machine-readable code")
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemError] | None = None
    request_id: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented as an ``application/problem+json`` Problem."""
    return {
        status: {
            "description": DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status in statuses
    }


def _has_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters")) or "requestBody" in operation


def install_openapi(
    app: FastAPI,
    *,
    minimum_role_of: Callable[[str, str], int | None],
    rate_limited: Callable[[str], bool],
) -> None:
    """Replace ``app.openapi`` with a generator that adds the Problem schema and the common errors.

    ``minimum_role_of(method, path)`` says whether a route requires a role (>0 → 401/403 documented);
    ``rate_limited(path)`` whether the rate limiter applies to it.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        components["securitySchemes"] = SECURITY_SCHEMES
        schemas = components.setdefault("schemas", {})
        schemas["ProblemError"] = ProblemError.model_json_schema()
        problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
        problem.pop("$defs", None)
        schemas["Problem"] = problem
        schemas.update(_COMPONENT_SCHEMAS)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if responses.get("422", {}).get("content", {}).get("application/json"):
                    del responses["422"]  # FastAPI's validation error: Beacon answers 400 problems
                wanted = [500, 503]
                if _has_input(operation):
                    wanted.append(400)
                if method in ("post", "put", "patch", "delete"):
                    wanted += [413, 415]
                role = minimum_role_of(method.upper(), path)
                if role:
                    wanted += [401, 403]
                operation["security"] = [{"bearerAuth": []}] if role else []
                if rate_limited(path):
                    wanted.append(429)
                for status, spec in problem_responses(*wanted).items():
                    responses.setdefault(str(status), spec)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
