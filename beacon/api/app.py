"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from beacon import __version__
from beacon.api.problems import install_problem_handlers
from beacon.config import Settings, load_settings
from beacon.runtime import Runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the API. Without ``runtime`` it starts (and stops) one from ``settings`` in the lifespan."""
    settings = settings or (runtime.settings if runtime else load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        rt = runtime or await Runtime.start(settings)
        app.state.runtime = rt
        try:
            yield
        finally:
            if owned:
                await rt.stop()

    app = FastAPI(
        title="Beacon runner",
        version=__version__,
        summary="Verifiable, multi-region LLM bias benchmarks: signed JobSpec intake, execution, receipts, "
        "transparency log.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    from beacon.api.routes import include_routers

    include_routers(app)
    return app
