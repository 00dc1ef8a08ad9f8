"""CLI: ``beacon day1``, ``beacon report``, ``beacon verify-report`` (see beacon/cli/__init__.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

STATUS_STYLE = {
    "pass": "green",
    "passed": "green",
    "fail": "red",
    "failed": "red",
    "error": "magenta",
    "not_evaluated": "yellow",
    "skipped": "dim",
}


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status.replace('_', ' ')}[/]"


def print_summary(summary: dict[str, Any], run_dir: Path, console: Console) -> None:
    """The phases, the success-criteria table and where the report is."""
    exited = (summary.get("runner") or {}).get("exited")
    if exited:
        during = f" during phase {exited['phase']}" if exited.get("phase") else ""
        console.print(f"[red]RUNNER EXITED: the runner under test {exited['how']}{during}[/]")
    phases = Table(title="Phases", title_justify="left")
    for column in ("phase", "title", "status", "time", "checks"):
        phases.add_column(column)
    for phase in summary["phases"]:
        counts = (phase.get("accounting") or {}).get("counts") or {}
        missing = (phase.get("accounting") or {}).get("missing") or []
        checks = f"{counts.get('pass', 0)}✓ {counts.get('fail', 0)}✗ {counts.get('skip', 0)} skipped"
        if missing:
            checks += f", missing: {', '.join(missing[:4])}"
        error = phase.get("error") or {}
        status = _styled(phase["status"]) + (f" ({error.get('kind')})" if error else "")
        duration = phase.get("duration_s")
        phases.add_row(
            phase["id"], phase["title"], status, "–" if duration is None else f"{duration:.1f}s", checks
        )
    console.print(phases)
    criteria = Table(title="Success criteria", title_justify="left", show_lines=False)
    criteria.add_column("criterion")
    criteria.add_column("verdict")
    criteria.add_column("evidence")
    for criterion in summary.get("criteria", []):
        evidence = ", ".join(f"{e['ref']}={e['status']}" for e in criterion["evidence"])
        criteria.add_row(criterion["title"], _styled(criterion["status"]), evidence)
    console.print(criteria)
    target = summary.get("target_duration_s")
    took = summary["duration_s"]
    timing = f"{took:.1f}s" + (f" (target {target:.0f}s)" if target else "")
    console.print(f"run {summary['run_id']}: {_styled(summary['status'])} in {timing}")
    console.print(f"report: {run_dir / 'index.html'}")


def _parse_parameters(values: list[str]) -> dict[str, Any]:
    from beacon.harness.plan import parse_cli_value

    out: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE or PHASE.NAME=VALUE", param_hint="-p")
        out[name.strip()] = parse_cli_value(value)
    return out


def day1(
    runner: str | None = typer.Option(
        None,
        "--runner",
        help="URL of a live runner. Default: start an embedded runner (US/EU/ASIA on SQLite).",
    ),
    plan: Path = typer.Option(Path("test_plans/day1.yaml"), "--plan", help="The plan file."),
    phases: str | None = typer.Option(
        None, "--phases", help="Comma-separated phase ids to run (default: all)."
    ),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for reports/<run-id>/."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first phase that does not pass."),
    parameter: list[str] = typer.Option(
        [], "--parameter", "-p", help="Override a parameter: NAME=VALUE (every phase) or PHASE.NAME=VALUE."
    ),
    runner_log: Path | None = typer.Option(
        None,
        "--runner-log",
        help="A live runner's log file, if readable here (T-15 checks refusals are logged).",
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Name of the run folder (default: time + random)."
    ),
    no_attest: bool = typer.Option(
        False, "--no-attest", help="Do not ask the runner to sign and log the run."
    ),
    no_html: bool = typer.Option(False, "--no-html", help="Skip the HTML copies of the executed notebooks."),
) -> None:
    """Run the Day-1 plan phase by phase with papermill and write reports/<run-id>/index.html.

    Exits 0 when every phase passed and no success criterion failed, 1 otherwise, 2 when the run
    could not start (bad plan or parameter, no kernel, runner did not start).
    """
    from beacon.harness.launcher import EmbeddedRunnerError
    from beacon.harness.plan import PlanError
    from beacon.harness.runner import HarnessError, RunOptions, run_plan

    console = Console(stderr=True)
    options = RunOptions(
        plan_path=plan,
        runner_url=runner,
        runner_log_path=runner_log,
        phases=[p.strip() for p in phases.split(",") if p.strip()] if phases else None,
        out_dir=out,
        fail_fast=fail_fast,
        parameters=_parse_parameters(parameter),
        run_id=run_id,
        attest=not no_attest,
        html=not no_html,
    )
    try:
        outcome = run_plan(options, console)
    except (PlanError, HarnessError, EmbeddedRunnerError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    print_summary(outcome.summary, outcome.run_dir, Console())
    raise typer.Exit(outcome.exit_code)


def report(
    run_dir: Path = typer.Argument(None, help="A run folder, reports/<run-id>.", show_default=False),
    compare: tuple[Path, Path] | None = typer.Option(
        None, "--compare", help="Two run folders A B: what changed from A to B.", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="With --compare: print the comparison as JSON."),
) -> None:
    """Re-render reports/<run-id>/index.html from its summary.json, or compare two runs."""
    from beacon.harness.report import compare_runs, load_summary, render_report

    console = Console()
    if compare:
        try:
            diff = compare_runs(compare[0], compare[1])
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(diff, indent=2, default=str))
            return
        _print_comparison(diff, console)
        return
    if run_dir is None:
        raise typer.BadParameter("give a run folder, or --compare A B")
    try:
        path = render_report(run_dir)
        summary = load_summary(run_dir)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    print_summary(summary, run_dir, console)
    console.print(f"re-rendered {path}")


def _print_comparison(diff: dict[str, Any], console: Console) -> None:
    a, b = diff["a"], diff["b"]
    console.print(
        f"A = {a['run_id']} ({_styled(a['status'])}, {a['duration_s']:.1f}s)   "
        f"B = {b['run_id']} ({_styled(b['status'])}, {b['duration_s']:.1f}s)"
    )
    phases = Table(title="Phases", title_justify="left")
    for column in ("phase", "A", "B", "A time", "B time", "Δ"):
        phases.add_column(column)
    for row in diff["phases"]:
        delta = row["delta_s"]
        phases.add_row(
            row["phase"],
            _styled(row["status_a"]),
            _styled(row["status_b"]),
            "–" if row["duration_a_s"] is None else f"{row['duration_a_s']:.1f}s",
            "–" if row["duration_b_s"] is None else f"{row['duration_b_s']:.1f}s",
            "–" if delta is None else f"{delta:+.1f}s",
        )
    console.print(phases)
    changed = Table(title="Checks whose verdict changed", title_justify="left")
    for column in ("phase", "check", "A", "B", "B actual"):
        changed.add_column(column)
    for row in diff["changed_checks"]:
        changed.add_row(
            row["phase"], row["check"], _styled(row["a"]), _styled(row["b"]), str(row["actual_b"])[:60]
        )
    console.print(changed if diff["changed_checks"] else "no check changed its verdict")
    criteria = Table(title="Success criteria", title_justify="left")
    for column in ("criterion", "A", "B"):
        criteria.add_column(column)
    for row in diff["criteria"]:
        criteria.add_row(row["title"], _styled(row["a"]), _styled(row["b"]))
    console.print(criteria)


def verify_report_command(
    run_dir: Path = typer.Argument(..., help="A run folder, reports/<run-id>."),
    runner_key: str | None = typer.Option(None, "--runner-key", help="Pin the runner's public key (base64)."),
    log_vkey: str | None = typer.Option(None, "--log-vkey", help="Pin the log's verifier key (C2SP vkey)."),
) -> None:
    """Check a run folder offline: file hashes, the receipt's signature, its inclusion in the log.

    Exits 0 when every check passes, 1 otherwise.
    """
    from beacon.harness.attest import verify_report

    console = Console()
    verdict = verify_report(run_dir, runner_key=runner_key, log_vkey=log_vkey)
    table = Table(title=f"verify-report {run_dir}", title_justify="left")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for name, ok, detail in verdict.checks:
        table.add_row(name, "[green]ok[/]" if ok else "[red]FAILED[/]", detail)
    console.print(table)
    for note in verdict.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print("[bold green]verified[/]" if verdict.ok else "[bold red]NOT verified[/]")
    raise typer.Exit(0 if verdict.ok else 1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.command("day1")(day1)
    app.command("report")(report)
    app.command("verify-report")(verify_report_command)
