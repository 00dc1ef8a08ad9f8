"""The FastAPI application factory.

``create_app(settings)`` builds the API: problem+json errors, the edge middleware (request id,
CORS, security headers, body limits, access log, metrics), the app-wide rate limiter, every
router, and an OpenAPI document that lists each route's errors. ``app_from_environment`` is the
zero-argument factory for ``uvicorn --factory`` (needed with ``--workers N``).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import cache

from fastapi import Depends, FastAPI

from beacon import __version__
from beacon.api.auth import minimum_role
from beacon.api.middleware import install_middleware
from beacon.api.openapi import install_openapi
from beacon.api.problems import install_problem_handlers
from beacon.api.ratelimit import EXEMPT_PREFIXES, enforce_rate_limit, open_limiter
from beacon.api.routing import api_routes
from beacon.boot import open_runtime
from beacon.config import Settings, load_settings
from beacon.intake import Intake
from beacon.runtime import Runtime
from beacon.worker.service import Pipeline

DESCRIPTION = """\
Accepts Ed25519-signed JobSpecs, plans them into executions (region × model × question), runs
them on region workers and issues signed receipts logged in an RFC 6962 transparency log.

Every error is an RFC 9457 problem (`application/problem+json`) with a stable `code` and the
`request_id`. Authentication is `Authorization: Bearer <token>` (roles admin ⊃ operator ⊃ viewer);
job submission is authorised by the JobSpec's own signature.
"""


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, *, pipeline: Pipeline | None = None
) -> FastAPI:
    """Build the API. Without ``runtime`` it opens (and closes) one from ``settings`` in the lifespan.

    The routes' services live in ``app.state``: ``runtime``, ``intake`` (signed JobSpecs in),
    ``rate_limiter`` and ``pipeline`` (the relay, sweeper and in-process workers of ``beacon serve``;
    None where this process runs none). The lifespan closes the intake and the limiter.
    """
    settings = settings or (runtime.settings if runtime else load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if runtime is None:
                _install_runtime(app, await stack.enter_async_context(open_runtime(settings)))
            stack.push_async_callback(app.state.intake.aclose)
            stack.push_async_callback(app.state.rate_limiter.aclose)
            # Everything built so far lives as long as the process: keep it out of the cyclic GC's
            # scans, which otherwise grow with it and show up as latency spikes under load.
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(
        title="Beacon runner",
        version=__version__,
        summary="Verifiable, multi-region LLM bias benchmarks: signed JobSpec intake, execution, receipts, "
        "transparency log.",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(enforce_rate_limit)],
        # FastAPI's /docs and /redoc pages load their scripts from a CDN (no SRI): a runner serves
        # nothing it does not ship. The document itself is at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.rate_limiter = open_limiter(settings)
    app.state.pipeline = pipeline
    if runtime is not None:
        _install_runtime(app, runtime)  # usable before the lifespan runs (e.g. by in-process test clients)
    install_problem_handlers(app)
    install_middleware(
        app,
        cors_origins=settings.cors_origins,
        max_body_bytes=settings.max_body_bytes,
        access_log_enabled=settings.access_log,
        trusted_proxies=settings.trusted_proxies,
    )
    from beacon.api.routes import include_routers

    include_routers(app)
    from beacon.portal import mount_portal

    mount_portal(app)  # the browser front end at /portal/ (static files, their own CSP)

    @cache
    def roles() -> dict[tuple[str, str], int]:
        table: dict[tuple[str, str], int] = {}
        for info in api_routes(app):
            role = minimum_role(info.dependant) if info.dependant is not None else None
            for method in info.methods:
                table[(method, info.path)] = int(role) if role else 0
        return table

    install_openapi(
        app,
        minimum_role_of=lambda method, path: roles().get((method, path)),
        rate_limited=lambda path: not path.startswith(EXEMPT_PREFIXES),
    )
    return app


def _install_runtime(app: FastAPI, runtime: Runtime) -> None:
    app.state.runtime = runtime
    app.state.intake = Intake(runtime)


def app_from_environment() -> FastAPI:
    """``uvicorn --factory beacon.api.app:app_from_environment``: settings from the environment, logging set up."""
    from beacon.logging import configure_logging

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
