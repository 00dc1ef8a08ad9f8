"""FastAPI dependencies shared by the route modules."""

from __future__ import annotations

from fastapi import Request

from beacon.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime. ``async`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool."""
    runtime: Runtime = request.app.state.runtime
    return runtime
