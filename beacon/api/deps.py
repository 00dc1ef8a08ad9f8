"""FastAPI dependencies shared by the route modules."""

from __future__ import annotations

from fastapi import Request

from beacon.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
