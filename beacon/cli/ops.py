"""CLI: ``beacon ops …`` (the emergency procedures, over HTTP with a token), ``beacon backup``,
``beacon restore`` (see beacon/cli/__init__.py and docs/operations.md)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from beacon.cli.serve import settings_or_exit

if TYPE_CHECKING:
    from beacon.client import BeaconClient

T = TypeVar("T")

ops_app = typer.Typer(
    help="Operate a running runner over HTTP (pause, queues, dead letters, workers). "
    "The token is read from an environment variable (--token-env), never from the command line.",
    no_args_is_help=True,
)
console = Console()
TOKEN_VARIABLES = ("BEACON_TOKEN", "ADMIN_TOKEN", "OPERATOR_TOKEN")

UrlOption = typer.Option(
    "http://127.0.0.1:8090", "--url", envvar="BEACON_URL", help="The runner's base URL (env BEACON_URL)."
)
TokenEnvOption = typer.Option(
    None,
    "--token-env",
    help="Name of the environment variable holding the token "
    f"(default: the first set of {', '.join(TOKEN_VARIABLES)}).",
)
JsonOption = typer.Option(False, "--json", help="Print the raw JSON answer.")


def _client(url: str, token_env: str | None) -> BeaconClient:
    from beacon.client import BeaconClient, BeaconConfigError

    name = token_env or next((n for n in TOKEN_VARIABLES if os.environ.get(n, "").strip()), None)
    if name is None:
        _fail(f"no token: set one of {', '.join(TOKEN_VARIABLES)} (or name another with --token-env)")
    try:
        return BeaconClient(url, token_env=name)
    except BeaconConfigError as exc:  # a malformed URL or an unset token variable
        _fail(str(exc))


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _call(url: str, token_env: str | None, action: Callable[[BeaconClient], T]) -> T:
    from beacon.client import BeaconAPIError, BeaconError

    client = _client(url, token_env)
    try:
        with client:
            return action(client)
    except BeaconAPIError as exc:
        _fail(f"{exc.status} {exc.code}: {exc.detail or exc}")
    except BeaconError as exc:
        _fail(str(exc))


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


@ops_app.command("pause")
def pause(
    reason: str | None = typer.Option(None, help="Why (recorded in the audit log)."),
    url: str = UrlOption,
    token_env: str | None = TokenEnvOption,
) -> None:
    """Halt new submissions (admin): POST /api/v1/jobs answers 503; running jobs continue."""
    answer = _call(url, token_env, lambda c: c.pause_submissions(reason))
    typer.echo(f"submissions paused (admin config version {answer.get('config_version')})")


@ops_app.command("resume")
def resume(url: str = UrlOption, token_env: str | None = TokenEnvOption) -> None:
    """Accept submissions again (admin)."""
    answer = _call(url, token_env, lambda c: c.resume_submissions())
    typer.echo(f"submissions accepted (admin config version {answer.get('config_version')})")


@ops_app.command("queues")
def queues(url: str = UrlOption, token_env: str | None = TokenEnvOption, as_json: bool = JsonOption) -> None:
    """Queue depth, pending, delayed, oldest age and dead letters per region (operator)."""
    data = _call(url, token_env, lambda c: c.queue_stats())
    if as_json:
        _print_json(data)
        return
    table = Table(
        title=f"queues ({data['kind']})"
        + ("  [red]SUBMISSIONS PAUSED[/red]" if data["submissions_paused"] else "")
    )
    for column in (
        "region",
        "depth",
        "pending",
        "delayed",
        "dead",
        "oldest waiting",
        "oldest pending",
        "consumers",
    ):
        table.add_column(column, justify="right" if column not in ("region", "consumers") else "left")
    for region in data["regions"]:
        table.add_row(
            region["region"],
            str(region["depth"]),
            str(region["pending"]),
            str(region["delayed"]),
            str(region["dead_letters"]),
            _age(region["oldest_ready_age_s"]),
            _age(region["oldest_pending_age_s"]),
            ", ".join(c["name"] for c in region["consumers"]) or "-",
        )
    console.print(table)
    relay = data["relay"]
    console.print(f"outbox: {relay['unpublished']} unpublished, oldest {_age(relay['oldest_age_s'])}")


@ops_app.command("dead-letters")
def dead_letters(
    region: str | None = typer.Option(None, help="Only this region."),
    limit: int = typer.Option(50, min=1, max=1000),
    url: str = UrlOption,
    token_env: str | None = TokenEnvOption,
    as_json: bool = JsonOption,
) -> None:
    """Dead letters, newest first, with the reason of each (operator)."""
    data = _call(url, token_env, lambda c: c.dead_letters(region, limit))
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"dead letters ({data['total']})")
    for column in ("id", "region", "execution", "attempts", "reason", "at"):
        table.add_column(column)
    for item in data["dead_letters"]:
        table.add_row(
            str(item["id"]),
            item["region"],
            item["execution_id"] or "-",
            str(item["attempts"]),
            item["reason"],
            item["created_at"],
        )
    console.print(table)


@ops_app.command("requeue")
def requeue(
    ids: list[int] = typer.Option(None, "--id", help="Dead-letter id (repeat for several)."),
    region: str | None = typer.Option(None, help="Every dead letter of this region."),
    url: str = UrlOption,
    token_env: str | None = TokenEnvOption,
) -> None:
    """Publish dead letters again (operator); those whose execution has ended are skipped, with why."""
    answer = _call(url, token_env, lambda c: c.requeue_dead_letters(ids or None, region))
    typer.echo(f"requeued: {answer['requeued'] or 'none'}")
    for skipped in answer["skipped"]:
        typer.echo(f"skipped {skipped['id']}: {skipped['reason']}")


@ops_app.command("purge")
def purge(
    ids: list[int] = typer.Option(None, "--id", help="Dead-letter id (repeat for several)."),
    region: str | None = typer.Option(None, help="Every dead letter of this region."),
    url: str = UrlOption,
    token_env: str | None = TokenEnvOption,
) -> None:
    """Forget dead letters (admin)."""
    answer = _call(url, token_env, lambda c: c.purge_dead_letters(ids or None, region))
    typer.echo(f"purged {answer['purged']} dead letter(s)")


@ops_app.command("workers")
def workers(url: str = UrlOption, token_env: str | None = TokenEnvOption, as_json: bool = JsonOption) -> None:
    """Live workers: region, state, heartbeat age, what each is running (operator)."""
    data = _call(url, token_env, lambda c: c.workers())
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"workers (live = heartbeat within {data['lease_s']:g}s)")
    for column in ("id", "region", "backend", "state", "heartbeat", "running"):
        table.add_column(column)
    for item in data["workers"]:
        table.add_row(
            item["id"],
            item["region"],
            item["backend"],
            item["state"],
            _age(item["heartbeat_age_s"]),
            f"{len(item['current'])}/{item['concurrency']}",
        )
    console.print(table)


def _worker_command(verb: str, doc: str) -> None:
    def command(
        worker_id: str = typer.Argument(..., help="The worker id (see `beacon ops workers`)."),
        url: str = UrlOption,
        token_env: str | None = TokenEnvOption,
    ) -> None:
        method = {"drain": "drain_worker", "stop": "stop_worker", "start": "start_worker"}[verb]
        answer = _call(url, token_env, lambda c: getattr(c, method)(worker_id))
        typer.echo(json.dumps(answer))

    command.__doc__ = doc
    ops_app.command(verb)(command)


_worker_command("drain", "Drain a worker (operator): finish current work, take no more, then stop.")
_worker_command("stop", "Stop a worker now (operator): its current work goes back to the queue.")
_worker_command("start", "Start a stopped in-process worker again (operator; embedded runners).")


# --- backup / restore (direct: DATABASE_URL and REDIS_URL of this environment) ----------------------
def _progress() -> tuple[Progress, Callable[[str, int], None]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} rows"),
        TimeElapsedColumn(),
        console=console,
    )
    tasks: dict[str, Any] = {}

    def update(table: str, rows: int) -> None:
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=None)
        progress.update(tasks[table], completed=rows)

    return progress, update


def backup(
    file: Path = typer.Argument(..., help="Where to write the backup (.jsonl.gz)."),
    url: str | None = typer.Option(
        None, "--url", help="Take it from a running runner over HTTP (admin token) instead of DATABASE_URL."
    ),
    token_env: str | None = TokenEnvOption,
) -> None:
    """Back up the database (one consistent snapshot) and the queue's messages to FILE."""
    if url is not None:
        started = time.monotonic()
        data = _call(url, token_env, lambda c: c.backup())
        file.write_bytes(data)
        typer.echo(f"wrote {file} ({len(data)} bytes) from {url} in {time.monotonic() - started:.1f}s")
        return
    settings = settings_or_exit()

    async def run() -> Any:
        from beacon.backup import write_backup
        from beacon.queue import open_queue
        from beacon.store import Database

        db = Database(settings.effective_database_url)
        queue = open_queue(settings) if settings.redis_url else None
        progress, update = _progress()
        try:
            with progress:
                return await write_backup(db, queue, file, update)
        finally:
            if queue is not None:
                await queue.aclose()
            await db.close()

    summary = asyncio.run(run())
    typer.echo(
        f"wrote {file}: {sum(summary.counts.values())} rows, {sum(summary.queue.values())} queue messages"
    )


def restore(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A file written by `beacon backup`."),
    check_only: bool = typer.Option(False, "--check", help="Only check that the file is complete."),
) -> None:
    """Restore FILE into the (empty) database of DATABASE_URL, migrating it first. Queue messages
    come back as outbox rows; the relay publishes them when the runner starts."""
    from beacon.backup import BackupError, check_backup, restore_backup

    if check_only:
        try:
            header, trailer = check_backup(file)
        except BackupError as exc:
            _fail(str(exc))
        typer.echo(
            f"{file}: complete, schema {header['schema_revision']}, {sum(trailer['counts'].values())} rows"
        )
        return
    settings = settings_or_exit()

    async def run() -> Any:
        from beacon.store import Database

        db = Database(settings.effective_database_url)
        progress, update = _progress()
        try:
            await db.migrate()
            with progress:
                return await restore_backup(db, file, progress=update)
        finally:
            await db.close()

    try:
        summary = asyncio.run(run())
    except BackupError as exc:
        _fail(str(exc))
    typer.echo(f"restored {sum(summary.counts.values())} rows; {summary.requeued} execution(s) queued again")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.add_typer(ops_app, name="ops")
    app.command()(backup)
    app.command()(restore)
