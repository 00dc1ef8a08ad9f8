"""CLI: ``beacon golem devnet up|down|status`` — a whole Golem network on this machine (beacon.golem.devnet)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

golem_app = typer.Typer(
    help="Golem: the local devnet (requestor, one provider per region, tGLM).", no_args_is_help=True
)
devnet_app = typer.Typer(
    help="A local Golem network: router, anvil chain with tGLM, requestor yagna, one provider yagna per region.",
    no_args_is_help=True,
)
golem_app.add_typer(devnet_app, name="devnet")

_DIR = typer.Option(
    Path(".beacon/golem-devnet"), "--dir", "-d", help="The devnet's directory (state, logs, data dirs)."
)


@devnet_app.command("up")
def devnet_up(
    directory: Path = _DIR,
    isolation: str = typer.Option(
        "auto",
        "--isolation",
        help="netns (loopback-only network namespace), loopback, or auto (netns when root).",
    ),
    regions: str = typer.Option(
        "US,EU,ASIA", "--regions", help="Comma-separated regions, one provider each."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the devnet's facts as JSON."),
) -> None:
    """Start the devnet in a fresh directory and print YAGNA_URL / YAGNA_APPKEY for the requestor."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from beacon.golem.devnet import DevnetError, up

    console = Console(stderr=True)
    wanted = [r.strip().upper() for r in regions.split(",") if r.strip()]
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("starting the Golem devnet", total=None)
            devnet = up(
                directory,
                regions=wanted,
                isolation=isolation,
                progress=lambda step: bar.update(task, description=f"started: {step}"),
            )
    except DevnetError as exc:
        console.print(f"[red]devnet did not start:[/] {exc}")
        raise typer.Exit(1) from exc
    env = devnet.env()
    if as_json:
        typer.echo(
            json.dumps(
                {"dir": devnet.dir, "isolation": devnet.isolation, "env": env, "timings": devnet.timings}
            )
        )
        return
    console.print(
        f"[green]Golem devnet up[/] in {devnet.timings['total']:.1f} s ({devnet.isolation}) at {devnet.dir}"
    )
    for key in (
        "YAGNA_URL",
        "YAGNA_APPKEY",
        "GOLEM_NETWORK",
        "GOLEM_PAYMENT_DRIVER",
        "GOLEM_REGION_PROVIDERS",
    ):
        typer.echo(f"export {key}={shlex.quote(env[key])}")
    typer.echo(f'export PATH={shlex.quote(devnet.gftp_dir)}:"$PATH"  # the devnet\'s gftp stand-in')


@devnet_app.command("down")
def devnet_down(directory: Path = _DIR) -> None:
    """Stop every process of the devnet by PID (yagna with SIGINT) and remove its network namespace."""
    from beacon.golem.devnet import DevnetError, down

    try:
        outcome = down(directory)
    except DevnetError as exc:
        Console(stderr=True).print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    typer.echo(
        f"stopped in {outcome['stopped_in_s']} s; killed after the grace period: {outcome['killed'] or 'none'}"
    )
    if outcome["left"]:
        typer.echo(f"still running: {outcome['left']}")
        raise typer.Exit(1)


@devnet_app.command("status")
def devnet_status(directory: Path = _DIR, as_json: bool = typer.Option(False, "--json")) -> None:
    """Which of the devnet's processes run, and its nodes."""
    from beacon.golem.devnet import DevnetError, status

    try:
        facts = status(directory)
    except DevnetError as exc:
        Console(stderr=True).print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(facts))
        return
    table = Table(title=f"Golem devnet at {facts['dir']} ({facts['isolation']})", title_justify="left")
    table.add_column("process")
    table.add_column("running")
    for role, alive in facts["processes"].items():
        table.add_row(role, "[green]yes[/]" if alive else "[red]no[/]")
    Console().print(table)
    typer.echo(f"requestor {facts['requestor']['node_id']} at {facts['requestor']['api_url']}")
    for region, node in facts["providers"].items():
        typer.echo(f"provider {region}: {node['node_id']} ({node['name']})")
    if not any(facts["processes"].values()):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.add_typer(golem_app, name="golem")
