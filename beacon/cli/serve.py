"""CLI: ``beacon serve``, ``beacon worker``, ``beacon db upgrade`` (see beacon/cli/__init__.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from beacon.config import REGIONS, ConfigError, Settings, load_settings, normalize_region

if TYPE_CHECKING:
    from beacon.runtime import Runtime

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings of this environment; a configuration error is printed and exits with status 2."""
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen and (exc.__cause__ or exc.__context__) is not None:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


@contextlib.asynccontextmanager
async def runtime_or_exit(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Runtime]:
    """The runtime, once its database answers; closed when the block ends.

    A database that is away at start (restarting, not up yet) is waited out with backoff for
    ``BEACON_START_WAIT_SECONDS``; past that it is one line naming its variable, and exit 2. Without
    ``migrate`` (a worker) the schema must already be at head: another revision is exit 2 too.
    """
    import logging

    from beacon.boot import open_runtime
    from beacon.logging import redact
    from beacon.outage import Backoff, is_outage
    from beacon.store.migrate import current_revision, head_revision

    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.start_wait_s
    backoff = Backoff(log=logging.getLogger("beacon.cli"))
    head = head_revision()  # read once: it parses the migration scripts
    while True:
        stack = contextlib.AsyncExitStack()
        try:
            runtime = await stack.enter_async_context(open_runtime(settings, migrate=migrate))
            revision = head
            if not migrate:
                async with runtime.db.connect() as conn:
                    revision = await conn.run_sync(current_revision)
            break
        except Exception as exc:
            await stack.aclose()
            if not is_outage(exc):
                raise
            if loop.time() < deadline:
                await backoff.wait("database at start", exc)
                continue
            variable = "DATABASE_URL" if settings.database_url else "BEACON_DATA_DIR"
            cause = _root_cause(exc)
            typer.secho(
                f"cannot reach the database named by {variable} ({redact(settings.effective_database_url)}): "
                f"{type(cause).__name__}: {redact(str(cause))}",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(2) from None
    async with stack:
        if revision != head:
            typer.secho(
                f"the database is at revision {revision}, this worker needs {head}: "
                "run `beacon db upgrade` (or start the API, which upgrades it)",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(2)
        yield runtime


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        typer.secho(f"cannot listen on {host}:{port}: {exc.strerror}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    sock.listen(2048)  # connections queue from now on, even before the server's loop accepts them
    sock.set_inheritable(True)
    return sock


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (use ::1 for IPv6 loopback)."),
    port: int = typer.Option(8090, help="Port to listen on; 0 picks a free one (the URL is printed)."),
    embedded: bool = typer.Option(
        False,
        "--embedded",
        help="API, relay, sweeper and three region workers (US, EU, ASIA) in one process, on SQLite "
        "(unless DATABASE_URL says otherwise) with the in-process queue. Also the mode without REDIS_URL.",
    ),
    relay: bool = typer.Option(True, "--relay/--no-relay", help="Run the outbox relay in this process."),
    sweeper: bool = typer.Option(True, "--sweeper/--no-sweeper", help="Run the sweeper in this process."),
    concurrency: int | None = typer.Option(
        None, min=1, help="Executions at a time per in-process worker (default BEACON_WORKER_CONCURRENCY)."
    ),
    drain_timeout: float = typer.Option(30.0, help="Seconds to let in-process workers finish on shutdown."),
    session_file: Path | None = typer.Option(
        None,
        "--session-file",
        help="Once listening, write a JupyterLab session file here (URL and token variable NAMES, never "
        "tokens; its folder is the session's run folder): notebooks with an empty runner_url use it "
        "when BEACON_SESSION_FILE names it.",
        show_default=False,
    ),
) -> None:
    """Run the runner: the HTTP API, the outbox relay and the sweeper — and, in embedded mode (or
    without REDIS_URL), one worker per region. Prints "Beacon listening on URL" once it accepts
    connections. SIGTERM/Ctrl-C drains the workers, then stops."""
    settings = settings_or_exit(embedded=True) if embedded else settings_or_exit()
    sock = _bind(host, port)
    asyncio.run(
        _serve(
            settings,
            sock,
            relay=relay,
            sweeper=sweeper,
            concurrency=concurrency,
            drain_timeout=drain_timeout,
            session_file=session_file,
        )
    )


async def _serve(
    settings: Settings,
    sock: socket.socket,
    *,
    relay: bool,
    sweeper: bool,
    concurrency: int | None,
    drain_timeout: float,
    session_file: Path | None = None,
) -> None:
    import uvicorn

    from beacon.api import create_app
    from beacon.logging import configure_logging, uvicorn_log_config
    from beacon.worker.service import Pipeline

    configure_logging(settings)
    async with runtime_or_exit(settings) as runtime:
        in_process = runtime.queue.kind == "inprocess"
        pipeline = Pipeline(
            runtime,
            relay=relay,
            sweeper=sweeper,
            worker_regions=REGIONS if in_process else (),
            concurrency=concurrency,
            preload=True,
        )
        app = create_app(settings, runtime=runtime, pipeline=pipeline)
        config = uvicorn.Config(
            app,
            log_config=uvicorn_log_config(settings),
            log_level=settings.log_level.lower(),
            access_log=False,
            # uvicorn would trust X-Forwarded-For from loopback peers; the app reads it only from
            # BEACON_TRUSTED_PROXIES (beacon.api.middleware).
            proxy_headers=False,
        )
        server = uvicorn.Server(config)
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal(signum: int, frame: object) -> None:
            # uvicorn handles SIGTERM/SIGINT while it serves, then re-raises them to the handlers it
            # found: these. The first lets the workers drain; another during the drain stops them.
            nonlocal signals
            signals += 1
            if signals > 1:
                loop.call_soon_threadsafe(pipeline.hard_stop)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        try:
            await pipeline.start()
            bound_host, bound_port = sock.getsockname()[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            mode = (
                "embedded: in-process queue, workers for " + ", ".join(REGIONS)
                if in_process
                else "service: Redis queue"
            )
            print(f"Beacon listening on http://{shown}:{bound_port} ({mode})", flush=True)
            if session_file is not None:
                from beacon.harness.session import write_session_file

                write_session_file(
                    session_file, runner_url=f"http://{shown}:{bound_port}", run_dir=session_file.parent
                )
                print(f"session file {session_file} (export BEACON_SESSION_FILE={session_file})", flush=True)
            await server.serve(sockets=[sock])
        finally:
            await pipeline.stop(drain=True, timeout_s=drain_timeout)
            sock.close()


def worker(
    region: str = typer.Option(..., "--region", "-r", help="The region this worker serves: US, EU or ASIA."),
    backend: str | None = typer.Option(
        None,
        help="Executor backend (llamacpp, ollama, golem); default BEACON_REGION_BACKENDS / BEACON_BACKEND.",
    ),
    concurrency: int | None = typer.Option(
        None, min=1, help="Executions at a time (default BEACON_WORKER_CONCURRENCY)."
    ),
    worker_id: str | None = typer.Option(None, "--id", help="Worker id (default: region-host-pid-random)."),
) -> None:
    """Run one region worker: take that region's executions from the queue (REDIS_URL), run them on
    the backend, sign receipts. SIGTERM/Ctrl-C drains (finish current work, take no more); a second
    one stops at once and hands current work back to the queue."""
    chosen = normalize_region(region)
    if chosen is None:
        typer.secho(f"unknown region {region!r}; known: {', '.join(REGIONS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = settings_or_exit()
    if not settings.redis_url or settings.embedded:
        typer.secho(
            "a worker process needs REDIS_URL: the queue it shares with the API "
            "(for one process with everything, run `beacon serve --embedded`)",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    sys.exit(asyncio.run(_worker(settings, chosen, backend, concurrency, worker_id)))


async def _worker(
    settings: Settings, region: str, backend: str | None, concurrency: int | None, worker_id: str | None
) -> int:
    from beacon.executors.base import PermanentExecutorError
    from beacon.logging import configure_logging
    from beacon.worker.loop import Worker
    from beacon.worker.service import build_executor, warm_up

    configure_logging(settings)
    async with runtime_or_exit(settings, migrate=False) as runtime:
        try:
            executor = await build_executor(runtime, region, backend, strict=True)
        except PermanentExecutorError as exc:
            typer.secho(f"cannot serve {region}: {exc.message} ({exc.code})", fg=typer.colors.RED, err=True)
            return 2
        if settings.warm_up:
            await warm_up(executor, settings.default_models)
        unit = Worker(
            runtime,
            runtime.queue,
            region=region,
            executor=executor,
            backend=backend or settings.backend_for(region),
            worker_id=worker_id,
            concurrency=concurrency,
            local_finalizers=settings.worker_finalizers,
        )
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                unit.drain()
            else:
                unit.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        print(f"Beacon worker {unit.id} serving {region} ({unit.presence.info.backend})", flush=True)
        try:
            await unit.run()
        finally:
            with contextlib.suppress(Exception):
                await executor.aclose()
        return 0


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations up to the newest revision."""
    from beacon.store import Database

    settings = settings_or_exit()

    async def run() -> None:
        db = Database(settings.effective_database_url)
        try:
            await db.migrate()
        finally:
            await db.close()

    asyncio.run(run())
    typer.echo(f"database at head ({settings.effective_database_url.split('://', 1)[0]})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.command()(serve)
    app.command()(worker)
    app.add_typer(db_app, name="db")
