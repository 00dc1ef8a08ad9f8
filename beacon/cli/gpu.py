"""CLI: ``beacon gpu check`` / ``beacon gpu watch``, and the ``ollama-metrics`` command of the plan.

``ollama-metrics --check`` and ``beacon gpu check`` are one check: same options, same Ollama
(:func:`beacon.gpu.ollama_target`), same verdict and exit status (:class:`beacon.gpu.CheckExit`:
0 healthy, 1 not healthy, 2 bad usage).

This module imports only typer, rich and :mod:`beacon.gpu`, so it runs on a bare GPU host.
"""

from __future__ import annotations

import csv
import json
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from beacon.gpu import HealthReport, health_check, watch

gpu_app = typer.Typer(
    help="GPU, Ollama and host metrics (the plan's ollama-metrics.py).", no_args_is_help=True
)

_OLLAMA_HELP = (
    "Ollama to check (default: $OLLAMA_HOST, else 127.0.0.1:11434 — where nothing listening means "
    "'no Ollama on this host', a note, not a problem)."
)
_OLLAMA_HOST = typer.Option(None, "--ollama-host", "--host", help=_OLLAMA_HELP)
_REQUIRE_GPU = typer.Option(False, "--require-gpu", help="Unhealthy when no GPU does the inference.")
_MODELS = typer.Option([], "--model", "-m", help="A model that must be pulled in Ollama (repeatable).")
_MAX_LATENCY = typer.Option(
    None, "--max-latency", help="Unhealthy when the latency probe takes longer (seconds)."
)
_NO_PROBE = typer.Option(False, "--no-probe", help="Skip the Ollama latency probe (one short generation).")
_JSON = typer.Option(False, "--json", help="Print the full report as JSON instead of a table.")


def _yes_no(value: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[red]no[/]", None: "unknown"}[value]


def print_report(report: HealthReport, console: Console) -> None:
    """The health report as a few rich tables."""
    system = report.system
    host = Table(title="Host", show_header=False, title_justify="left")
    host.add_row(
        "CPU", f"{system.cpu_count} cores, {system.cpu_percent:.0f}% busy, load {system.load_average}"
    )
    host.add_row(
        "Memory",
        f"{system.memory_available_mib / 1024:.1f} GiB available of {system.memory_total_mib / 1024:.1f} GiB",
    )
    host.add_row(
        "Disk", f"{system.disk_free_gib:.1f} GiB free of {system.disk_total_gib:.1f} GiB ({system.disk_path})"
    )
    console.print(host)
    if report.gpu.available:
        gpus = Table(title=f"GPUs (driver {report.gpu.driver_version})", title_justify="left")
        for column in ("#", "name", "util %", "memory MiB", "temp °C", "power W"):
            gpus.add_column(column)
        for device in report.gpu.devices:
            gpus.add_row(
                str(device.index),
                device.name,
                "-" if device.utilization_pct is None else f"{device.utilization_pct:.0f}",
                f"{device.memory_used_mib:.0f} / {device.memory_total_mib:.0f}",
                "-" if device.temperature_c is None else f"{device.temperature_c:.0f}",
                "-" if device.power_w is None else f"{device.power_w:.0f}",
            )
        console.print(gpus)
    else:
        console.print(f"[bold]GPU:[/] none — {report.gpu.reason}")
    ollama = report.ollama
    if ollama is not None:
        if not ollama.reachable:
            console.print(f"[bold]Ollama[/] {ollama.host}: [red]unreachable[/] ({ollama.error})")
        else:
            table = Table(title=f"Ollama {ollama.version} at {ollama.host}", title_justify="left")
            for column in ("model", "size GiB", "loaded", "in GPU memory"):
                table.add_column(column)
            loaded = {m.name: m for m in ollama.loaded}
            for model in ollama.models:
                live = loaded.get(model.name)
                fraction = live.gpu_fraction if live else None
                table.add_row(
                    model.name,
                    f"{model.size_bytes / 2**30:.2f}",
                    "yes" if live else "no",
                    "-" if fraction is None else f"{100 * fraction:.0f}%",
                )
            console.print(table)
            probe = ollama.probe
            if probe is not None:
                if probe.ok:
                    rate = f", {probe.tokens_per_s:.1f} tokens/s" if probe.tokens_per_s else ""
                    console.print(f"[bold]Latency probe[/] {probe.model}: {probe.wall_s:.3f}s{rate}")
                else:
                    console.print(f"[bold]Latency probe[/] {probe.model}: [red]failed[/] ({probe.error})")
    acceleration = report.gpu_acceleration
    console.print(
        "[bold]GPU acceleration:[/] "
        + ("none detected: inference runs on the CPU" if acceleration is None else _yes_no(acceleration))
    )
    for note in report.notes:
        if note == report.gpu.reason:
            continue
        console.print(f"[dim]note: {note}[/]")
    for problem in report.problems:
        console.print(f"[red]problem: {problem}[/]")
    console.print("[bold green]healthy[/]" if report.healthy else "[bold red]not healthy[/]")


def _check(
    ollama_host: str | None,
    require_gpu: bool,
    models: list[str],
    max_latency: float | None,
    no_probe: bool,
    as_json: bool,
) -> None:
    report = health_check(
        ollama_host=ollama_host or None,
        require_gpu=require_gpu,
        models=models,
        probe=not no_probe,
        max_latency_s=max_latency,
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report, Console())
    raise typer.Exit(int(report.exit_status))


@gpu_app.command("check")
def check(
    ollama_host: str | None = _OLLAMA_HOST,
    require_gpu: bool = _REQUIRE_GPU,
    models: list[str] = _MODELS,
    max_latency: float | None = _MAX_LATENCY,
    no_probe: bool = _NO_PROBE,
    as_json: bool = _JSON,
) -> None:
    """Check GPU (NVML), Ollama (models, loaded models, a latency probe) and host.

    Exit status: 0 healthy, 1 not healthy, 2 bad usage — the same check as `ollama-metrics --check`."""
    _check(ollama_host, require_gpu, models, max_latency, no_probe, as_json)


def _watch(interval: float, out: Path | None, duration: float | None) -> None:
    stop = threading.Event()
    handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    writer: csv.DictWriter[str] | None = None
    count = 0
    try:
        for row in watch(interval, duration_s=duration, stop=stop):
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            count += 1
            if out is not None:
                cpu = row.get("cpu_percent") or 0.0
                gpu = row.get("gpu0_util_percent")
                gpu_text = "" if gpu is None else f"  gpu0 {gpu:.0f}%"
                print(f"\r{count} samples  cpu {cpu:5.1f}%{gpu_text}", end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if out is not None:
            handle.close()
            print(f"\n{count} samples written to {out}", file=sys.stderr)


@gpu_app.command("watch")
def watch_command(
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between samples."),
    out: Path | None = typer.Option(None, "--out", help="CSV file to write (default: standard output)."),
    duration: float | None = typer.Option(None, "--duration", min=0, help="Stop after this many seconds."),
) -> None:
    """Sample CPU, memory and every GPU (utilisation, memory, temperature, power) to CSV until stopped."""
    _watch(interval, out, duration)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.add_typer(gpu_app, name="gpu")


def _ollama_metrics(
    check: bool = typer.Option(
        False, "--check", help="One health check (the same as `beacon gpu check`); exit 0 healthy, 1 not."
    ),
    host: str | None = typer.Option(None, "--host", "--ollama-host", help=_OLLAMA_HELP),
    require_gpu: bool = _REQUIRE_GPU,
    max_latency: float | None = _MAX_LATENCY,
    no_probe: bool = _NO_PROBE,
    interval: float = typer.Option(5.0, "--interval", min=0.05, help="Seconds between samples (watch mode)."),
    out: Path | None = typer.Option(None, "--out", help="CSV file (watch mode; default: standard output)."),
    duration: float | None = typer.Option(None, "--duration", min=0, help="Stop after this many seconds."),
    models: list[str] = _MODELS,
    as_json: bool = _JSON,
) -> None:
    """The Day-1 plan's ollama-metrics.py: `--check` for a health check, otherwise sample metrics to CSV."""
    if check:
        _check(host, require_gpu, models, max_latency, no_probe, as_json)
    _watch(interval, out, duration)


def ollama_metrics_main() -> None:
    """Entry point of the ``ollama-metrics`` console script."""
    typer.run(_ollama_metrics)
