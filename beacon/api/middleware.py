"""The HTTP edge, as plain ASGI middleware (outermost first):

0. uvicorn's ``ProxyHeadersMiddleware``, only with ``BEACON_TRUSTED_PROXIES``: a request *from* one
   of those addresses has its client taken from X-Forwarded-For — the right-most hop that is not a
   proxy, since everything left of it was written by the client. Nothing else reads that header.
1. :class:`RequestContextMiddleware` — request id (``X-Request-ID`` echoed when sane, else
   generated), security headers, rate-limit headers, Prometheus metrics, the access log.
2. :class:`CORSMiddleware` — an exact origin allowlist, answered on every response, errors included.
3. :class:`BodyGuardMiddleware` — bodies over the limit → 413, non-JSON bodies → 415, JSON nested
   too deeply → 400 ``invalid_json``, before routing (so no parser or model recurses into it).
4. :class:`ErrorBoundaryMiddleware` — anything that escaped the handlers becomes a problem+json
   (500, or 503 when a backing service is down) *inside* the others, so even a 500 carries the
   request id, CORS and security headers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beacon.api.problems import Problem, problem_for_exception, problem_response
from beacon.api.routing import route_template
from beacon.intake.document import exceeds_depth, too_deep_detail
from beacon.logging import request_id_var
from beacon.metrics import HTTP_LATENCY, HTTP_REQUESTS

access_log = logging.getLogger("beacon.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")
_SENSITIVE_PREFIXES = ("/admin", "/auth")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-resource-policy", b"cross-origin"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
NO_STORE = (b"cache-control", b"no-store")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_problem(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    """Answer with ``problem`` from inside middleware (outside FastAPI's exception handlers)."""
    response = problem_response(Request(scope, receive), problem)
    await response(scope, receive, send)


class RequestContextMiddleware:
    """Request id, security headers, metrics, access log, last-resort errors."""

    def __init__(self, app: ASGIApp, *, access_log_enabled: bool = True) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        status = 500
        sent_bytes = 0

        async def send_with_context(message: Message) -> None:
            nonlocal status, sent_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {key.lower() for key, _ in headers}
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                if API_CSP[0] not in present:
                    headers.append(API_CSP)
                if scope.get("scheme") == "https":
                    headers.append(HSTS)
                if path.startswith(_SENSITIVE_PREFIXES) and NO_STORE[0] not in present:
                    headers.append(NO_STORE)
                limits = state.get("rate_limit_headers")
                if limits and b"ratelimit" not in present:
                    headers.extend((k.lower().encode(), v.encode()) for k, v in limits.items())
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope) or "<unmatched>"
            method: str = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            if self.access_log_enabled:
                principal = state.get("principal")
                client = scope.get("client")
                access_log.info(
                    "%s %s %s %.1fms",
                    method,
                    path,
                    status,
                    elapsed * 1000,
                    extra={
                        "method": method,
                        "path": path,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "bytes": sent_bytes,
                        "client": client[0] if client else None,
                        "actor": principal.actor if principal is not None else None,
                    },
                )
            request_id_var.reset(token)


class CORSMiddleware:
    """CORS with an exact origin allowlist; no wildcard, ever.

    A listed origin gets ``Access-Control-Allow-Origin`` echoed (with credentials allowed) on every
    response, errors included; preflights are answered here with 204. An unlisted origin gets no
    CORS header; its preflight is refused with a 403 problem.
    """

    ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
    ALLOW_HEADERS = "Content-Type, Authorization, Idempotency-Key, X-Request-ID, Accept"
    EXPOSE_HEADERS = (
        "X-Request-ID, Location, Retry-After, Idempotent-Replayed, RateLimit, RateLimit-Policy, "
        "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
    )

    def __init__(self, app: ASGIApp, *, allow_origins: Iterable[str], max_age_s: int = 600) -> None:
        self.app = app
        self.allow_origins = frozenset(origin.rstrip("/") for origin in allow_origins)
        if "*" in self.allow_origins:
            raise ValueError("CORS: a wildcard origin is not allowed")
        self.max_age = str(max_age_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        allowed = origin is not None and origin in self.allow_origins
        if (
            scope["method"] == "OPTIONS"
            and origin is not None
            and _header(scope, b"access-control-request-method")
        ):
            await self._preflight(scope, receive, send, origin, allowed)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if not k.startswith(b"access-control-")
                ]
                headers.append((b"vary", b"Origin"))
                if allowed:
                    assert origin is not None
                    headers.extend(self._simple_headers(origin))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors if origin is not None else send)

    def _simple_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", self.EXPOSE_HEADERS.encode()),
        ]

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: str, allowed: bool
    ) -> None:
        if not allowed:
            await send_problem(
                scope,
                receive,
                send,
                Problem(
                    403,
                    "cors_origin_not_allowed",
                    "Origin not allowed",
                    f"the origin {origin!r} is not in this runner's CORS allowlist (CORS_ORIGINS)",
                    headers={"Vary": "Origin"},
                ),
            )
            return
        headers = [
            *self._simple_headers(origin),
            (b"access-control-allow-methods", self.ALLOW_METHODS.encode()),
            (b"access-control-allow-headers", self.ALLOW_HEADERS.encode()),
            (b"access-control-max-age", self.max_age.encode()),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class BodyGuardMiddleware:
    """Bound request bodies (413), require JSON for non-empty bodies (415) and bound its nesting (400)."""

    BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_body_bytes:
            await send_problem(scope, receive, send, self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await send_problem(scope, receive, send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and not _is_json(_header(scope, b"content-type")):
            await send_problem(
                scope,
                receive,
                send,
                Problem(
                    415,
                    "unsupported_media_type",
                    "Unsupported media type",
                    "send the body as JSON with 'Content-Type: application/json'",
                    headers={"Accept-Post": "application/json"},
                ),
            )
            return
        if body and exceeds_depth(body):
            problem = Problem(400, "invalid_json", "The body is not JSON", too_deep_detail())
            await send_problem(scope, receive, send, problem)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> Problem:
        return Problem(
            413,
            "payload_too_large",
            "Request body too large",
            f"the body must be at most {self.max_body_bytes} bytes",
            max_bytes=self.max_body_bytes,
        )


class ErrorBoundaryMiddleware:
    """Unhandled exceptions → problem+json, before the response leaves the edge middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # too late for a problem document: let the server drop the connection
                raise
            await send_problem(scope, receive, send, problem_for_exception(Request(scope), exc))


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def install_middleware(
    app: Any,
    *,
    cors_origins: Sequence[str],
    max_body_bytes: int,
    access_log_enabled: bool,
    trusted_proxies: Sequence[str] = (),
) -> None:
    """Add the edge middleware in the order described above (Starlette wraps the last added outermost)."""
    app.add_middleware(ErrorBoundaryMiddleware)
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(CORSMiddleware, allow_origins=cors_origins)
    app.add_middleware(RequestContextMiddleware, access_log_enabled=access_log_enabled)
    if trusted_proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted_proxies))
