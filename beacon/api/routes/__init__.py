"""Route modules; each exposes ``router``. Registered here in one place."""

from __future__ import annotations

from fastapi import FastAPI


def include_routers(app: FastAPI) -> None:
    from beacon.api.routes import admin, auth, health, jobs, metrics, questions

    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(jobs.router)
    app.include_router(questions.router)
    from beacon.api.routes import transparency

    app.include_router(transparency.router)
    from beacon.api.routes import diffs

    app.include_router(diffs.router)
    from beacon.api.routes import executions, keys, ops

    app.include_router(executions.router)
    app.include_router(keys.router)
    app.include_router(ops.router)
