"""CLI: ``beacon portal``: serve the portal alone, on its own origin, talking to a runner elsewhere."""

from __future__ import annotations

import typer


def portal(
    api_base: str = typer.Option(
        ...,
        "--api-base",
        help="The runner's URL, e.g. http://127.0.0.1:8090 (its CORS_ORIGINS must list this portal).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(5173, "--port", help="Port to listen on (0: any free port)."),
) -> None:
    """Serve the portal's pages at http://HOST:PORT/ for the runner at --api-base (the runner also serves
    them itself at /portal/). Stops on Ctrl-C."""
    import time

    from rich.console import Console

    from beacon.portal import PortalServer

    console = Console(stderr=True)
    try:
        server = PortalServer(api_base, host, port).start()
    except (OSError, ValueError, RuntimeError) as exc:
        console.print(f"[red]cannot serve the portal: {exc}[/]")
        raise typer.Exit(2) from None
    console.print(
        f"portal at {server.url}/ for the runner at {api_base} (add {server.url} to its CORS_ORIGINS)"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    app.command("portal")(portal)
