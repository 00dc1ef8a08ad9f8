"""RFC 9457 problem details: every error the API returns is one of these.

Each problem has a stable ``code`` (also the last part of its ``type`` URI) and carries the
``request_id``, so a user can quote it and an operator can find the log line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:beacon:problem:"

log = logging.getLogger("beacon.api")


class Problem(Exception):
    """Raise to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extensions = extensions

    def body(self, request_id: str | None, instance: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        body["request_id"] = request_id
        return body


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(request: Request, problem: Problem) -> Response:
    body = problem.body(request_id_of(request), request.url.path)
    # Only a 500 is an error of ours; a refusal (400, 429, a paused or degraded 503) is the API working.
    level = logging.ERROR if problem.status == 500 else logging.WARNING
    log.log(
        level,
        "problem %s %s",
        problem.status,
        problem.code,
        extra={
            "code": problem.code,
            "status": problem.status,
            "detail": problem.detail,
            "path": request.url.path,
            "method": request.method,
            "request_id": body["request_id"],
        },
    )
    return Response(
        orjson.dumps(body),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{path, message, type}]`` with JSON-pointer-like dotted paths."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
        out.append(
            {"path": ".".join(loc) or "$", "message": error.get("msg", ""), "type": error.get("type", "")}
        )
    return out


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable request"),
    429: ("rate_limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def install_problem_handlers(app: FastAPI) -> None:
    """Turn every error FastAPI/Starlette can raise into problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(
            request,
            Problem(
                400,
                "invalid_request",
                "The request is not valid",
                "see errors",
                errors=validation_errors(exc.errors()),
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            from beacon.api.routing import allowed_methods

            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return problem_response(request, Problem(exc.status_code, code, title, detail, headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return problem_response(request, problem_for_exception(request, exc))


def problem_for_exception(request: Request, exc: BaseException) -> Problem:
    """The problem for an exception no handler took: 503 if a backing service is down, else 500 (logged)."""
    from beacon.outage import is_outage
    from beacon.store import DatabaseUnavailable

    if isinstance(exc, DatabaseUnavailable) or is_outage(exc):
        log.warning(
            "backing service unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
        )
        return Problem(
            503,
            "dependency_unavailable",
            "A backing service is unavailable",
            "the database or queue cannot be reached; retry shortly",
            headers={"Retry-After": "2"},
        )
    if _is_out_of_range(exc):
        # A number from the request that the database cannot hold (e.g. ?offset=10**40): the client's
        # error, not ours. Routes should bound their parameters; this keeps a missed bound a 400.
        log.warning("value out of range on %s %s", request.method, request.url.path, exc_info=exc)
        return Problem(
            400, "value_out_of_range", "A value is out of range", "a number in the request is too large"
        )
    if _is_bad_data(exc):
        # Text the database cannot store or compare (a NUL byte on PostgreSQL, say): the client's.
        # Routes validate identifiers at the edge (beacon.api.params); this keeps a missed one a 400.
        log.warning("value the database refuses on %s %s", request.method, request.url.path, exc_info=exc)
        return Problem(
            400,
            "invalid_value",
            "A value is not valid",
            "a value in the request cannot be stored or compared",
        )
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Problem(500, "internal_error", "Internal error", "the error was logged with this request id")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_out_of_range(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, OverflowError):
            return True
        if type(cause).__name__ in ("DataError", "NumericValueOutOfRangeError") and "range" in str(cause):
            return True
    return False


def _is_bad_data(exc: BaseException) -> bool:
    """A PostgreSQL data exception (SQLSTATE class 22: NUL in text, a bad encoding, ...).

    Recognised by asyncpg's class hierarchy (``asyncpg.exceptions.DataError``) without importing it.
    """
    return any(
        klass.__name__ == "DataError" and klass.__module__.startswith("asyncpg")
        for cause in _causes(exc)
        for klass in type(cause).__mro__
    )
