"""Health and readiness (minimal; the intake work extends it with every component)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from beacon import __version__
from beacon.api.deps import get_runtime
from beacon.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    db_ok = await runtime.db.ping()
    return {
        "status": "healthy" if db_ok else "unhealthy",
        "version": __version__,
        "components": {"database": {"status": "up" if db_ok else "down", "dialect": runtime.db.dialect}},
    }


@router.get("/health/ready")
async def ready(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    db_ok = await runtime.db.ping()
    return JSONResponse({"ready": db_ok}, status_code=200 if db_ok else 503)
