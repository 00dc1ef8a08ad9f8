"""FastAPI dependencies shared by the route modules: the services the app factory put in app state."""

from __future__ import annotations

from fastapi import Request

from beacon.runtime import Runtime
from beacon.worker.service import Pipeline


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime. ``async`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_pipeline(request: Request) -> Pipeline | None:
    """The relay, sweeper and in-process workers of this process (``beacon serve``), if it runs them."""
    pipeline: Pipeline | None = request.app.state.pipeline
    return pipeline
