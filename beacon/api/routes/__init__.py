"""Route modules; each exposes ``router``. Registered here in one place."""

from __future__ import annotations

from fastapi import FastAPI


def include_routers(app: FastAPI) -> None:
    from beacon.api.routes import health

    app.include_router(health.router)
