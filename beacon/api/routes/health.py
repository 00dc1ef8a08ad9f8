"""Health, readiness and liveness.

``/health`` reports every component: the database (always) and whatever subsystems registered in
``runtime.health_checks`` (queue, workers, transparency log, IPFS …). Each check runs concurrently
with a time limit; one that raises or times out reports ``down``. ``/health/ready`` answers 503
while a component needed to accept work is down: the database, the queue (``queue``, ``redis``),
and any component whose check returns ``"critical": true``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from beacon import __version__
from beacon.api.deps import get_runtime
from beacon.runtime import HealthCheck, Runtime

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0
READINESS_COMPONENTS = frozenset({"database", "queue", "redis"})


async def _run_check(name: str, check: HealthCheck) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            result = dict(await check())
    except TimeoutError:
        result = {"status": "down", "error": f"no answer within {CHECK_TIMEOUT_S:g}s"}
    except Exception as exc:  # a broken check reports its component down; it never breaks /health
        result = {"status": "down", "error": type(exc).__name__}
    if result.get("status") not in ("up", "down", "degraded"):
        result["status"] = "down"
    result.setdefault("latency_ms", round((time.perf_counter() - started) * 1000, 2))
    return result


async def component_states(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Every component's state, checked concurrently."""

    async def database() -> dict[str, Any]:
        return {
            "status": "up" if await runtime.db.ping(within=CHECK_TIMEOUT_S) else "down",
            "dialect": runtime.db.dialect,
        }

    checks: dict[str, HealthCheck] = {"database": database, **runtime.health_checks}
    names = list(checks)
    results = await asyncio.gather(*(_run_check(name, checks[name]) for name in names))
    return dict(zip(names, results, strict=True))


def _critical(name: str, state: dict[str, Any]) -> bool:
    return name in READINESS_COMPONENTS or bool(state.get("critical"))


@router.get("/health", summary="Every component and its state (503 when a critical one is down)")
async def health(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    components = await component_states(runtime)
    critical_down = [n for n, s in components.items() if s["status"] == "down" and _critical(n, s)]
    degraded = [n for n, s in components.items() if s["status"] != "up"]
    status = "unhealthy" if critical_down else "degraded" if degraded else "healthy"
    body = {
        "status": status,
        "version": __version__,
        "mode": "embedded" if runtime.settings.embedded else "service",
        "components": components,
    }
    return JSONResponse(body, status_code=503 if critical_down else 200)


@router.get("/health/ready", summary="Ready to accept work: 503 while the database or queue is unreachable")
async def ready(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    components = await component_states(runtime)
    blocking = sorted(n for n, s in components.items() if s["status"] == "down" and _critical(n, s))
    body = {
        "ready": not blocking,
        "blocking": blocking,
        "components": {name: state["status"] for name, state in components.items()},
    }
    return JSONResponse(body, status_code=503 if blocking else 200)


@router.get("/health/live", summary="The process is alive (no dependency is checked)")
async def live() -> dict[str, str]:
    return {"status": "alive"}
