"""Serving the portal's static files: inside the runner at ``/portal/``, or alone on another origin.

Each page carries its own Content-Security-Policy (the API's ``default-src 'none'`` would block the
page's own scripts): scripts, styles and images only from the page's origin, and ``connect-src``
only to that origin and the configured API base. ``config.json`` tells the page its API base.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
PORTAL_PATH = "/portal"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the API base {url!r} is not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}"


def portal_csp(api_base: str = "") -> str:
    """The page's CSP: everything from its own origin, plus ``connect-src`` to the API's origin."""
    connect = "'self'" + (f" {_origin(api_base)}" if api_base else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class _PortalHeaders:
    """Adds the portal's CSP (and no caching: the files change with the package) to every response."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode("latin-1")),
            (b"cache-control", b"no-cache"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _portal_routes(api_base: str) -> list[Any]:
    async def config(_: Any) -> Response:
        return JSONResponse({"api_base": api_base})

    return [
        Route("/config.json", config),
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True)),
    ]


def portal_app(api_base: str) -> ASGIApp:
    """The portal alone (the "Netlify" of the plan): pages at ``/``, talking to the runner at ``api_base``."""
    _origin(api_base)
    return _PortalHeaders(Starlette(routes=_portal_routes(api_base.rstrip("/"))), portal_csp(api_base))


def mount_portal(app: Starlette) -> None:
    """Serve the portal at ``/portal/`` of the runner's app, talking to the same origin."""

    async def to_slash(_: Any) -> Response:
        return RedirectResponse(PORTAL_PATH + "/", status_code=308)

    app.router.routes.append(Route(PORTAL_PATH, to_slash, include_in_schema=False))
    app.mount(PORTAL_PATH, _PortalHeaders(Starlette(routes=_portal_routes("")), portal_csp()), name="portal")


class PortalServer:
    """``portal_app(api_base)`` on ``host:port`` in a thread of this process (uvicorn); a context manager."""

    def __init__(self, api_base: str = "", host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_base = api_base
        """The runner's URL; may be set after construction (its CORS_ORIGINS needs :attr:`url` first)."""
        self.host = host
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))  # bound now: a busy port is an OSError here, not in the thread
        except OSError:
            self._socket.close()
            raise
        self.port = int(self._socket.getsockname()[1])
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The portal's origin (what the runner's CORS allowlist must list)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> PortalServer:
        import uvicorn

        app = portal_app(self.api_base)
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="beacon-portal", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the portal server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with contextlib.suppress(OSError):
            self._socket.close()

    def __enter__(self) -> PortalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
