"""The app's routes as full templates (``/admin/config``, ``/api/v1/jobs/{job_id}``).

FastAPI ≥ 0.13x keeps included routers as a tree and puts the router-local route in
``scope["route"]`` (its path lacks the router's prefix). Metrics labels, rate-limit buckets, the
OpenAPI extras and the RBAC matrix need the full template; this module gives it, from public API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.types import Scope


@dataclass(frozen=True)
class RouteInfo:
    methods: frozenset[str]
    path: str
    """The full path template, prefixes included."""
    dependant: Any
    route: Any
    """The route object FastAPI puts in ``scope["route"]`` when it matches."""


def api_routes(app: FastAPI) -> Iterator[RouteInfo]:
    """Every HTTP route of ``app`` with its full path (API routes and plain Starlette routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        for route in app.routes:
            path = getattr(route, "path_format", None)
            if path is not None:
                yield RouteInfo(
                    frozenset(getattr(route, "methods", None) or ()),
                    path,
                    getattr(route, "dependant", None),
                    route,
                )
        return
    for context in iter_route_contexts(app.routes):
        path = context.path_format
        if path is None:
            continue
        yield RouteInfo(
            frozenset(context.methods or ()),
            path,
            getattr(context, "dependant", None),
            context.original_route,
        )


def _templates(app: Any, rebuild: bool = False) -> dict[int, str]:
    table: dict[int, str] | None = getattr(app.state, "beacon_route_templates", None)
    if table is None or rebuild:
        table = {}
        for info in api_routes(app):
            table.setdefault(id(info.route), info.path)
        app.state.beacon_route_templates = table
    return table


def route_template(scope: Scope) -> str | None:
    """The full template of the route that matched this request (None before routing / no match)."""
    route = scope.get("route")
    if route is None:
        return None
    app = scope.get("app")
    if isinstance(app, FastAPI):
        table = _templates(app)
        template = table.get(id(route))
        if template is None:
            template = _templates(app, rebuild=True).get(id(route))
        if template is not None:
            return template
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path is not None else None


def _method_table(app: Any) -> list[tuple[Any, frozenset[str]]]:
    table: list[tuple[Any, frozenset[str]]] | None = getattr(app.state, "beacon_route_methods", None)
    if table is None:
        from starlette.routing import compile_path

        table = [(compile_path(info.path)[0], info.methods) for info in api_routes(app) if info.methods]
        app.state.beacon_route_methods = table
    return table


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route of ``app`` answers at ``path``: the ``Allow`` of a 405.

    Starlette's own 405 names the methods of the first route whose path matched, so a path served
    by two routes (``GET`` and ``POST /api/v1/jobs``) advertised only one of them.
    """
    methods: set[str] = set()
    for pattern, route_methods in _method_table(app):
        if pattern.match(path):
            methods |= route_methods
    return sorted(methods)
