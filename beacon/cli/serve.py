"""CLI: serve, worker, db upgrade (see beacon/cli/__init__.py)."""

from __future__ import annotations

import asyncio

import typer

from beacon.config import ConfigError, load_settings

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def _settings_or_exit(**overrides: object):  # type: ignore[no-untyped-def]
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8090, help="Port to listen on (0 picks a free one)."),
    embedded: bool = typer.Option(
        False,
        "--embedded",
        help="Run API, relay and three region workers (US, EU, ASIA) in one process on SQLite.",
    ),
) -> None:
    """Run the runner's HTTP API."""
    import uvicorn

    from beacon.api import create_app

    settings = _settings_or_exit(embedded=embedded) if embedded else _settings_or_exit()
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations up to the newest revision."""
    from beacon.store import Database

    settings = _settings_or_exit()

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
    app.add_typer(db_app, name="db")
