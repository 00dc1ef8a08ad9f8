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
    "not_exercised": "yellow",
    "skipped": "dim",
}


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status.replace('_', ' ')}[/]"


def print_summary(summary: dict[str, Any], run_dir: Path, console: Console) -> None:
    """How the runner under test ended (if it did), what served the run, the phases, the
    success-criteria table and where the report is."""
    exited = (summary.get("runner") or {}).get("exited")
    if exited:
        during = f" during phase {exited['phase']}" if exited.get("phase") else ""
        console.print(f"[red]RUNNER EXITED: the runner under test {exited['how']}{during}[/]")
    served = summary.get("served_by") or {}
    if served:
        table = Table(title="What served the plan's components", title_justify="left")
        for column in ("component", "served by", "verdict", "detail"):
            table.add_column(column)
        for fact in served.values():
            verdict = "[green]real[/]" if fact["exercised"] else "[yellow]substitute: not exercised[/]"
            table.add_row(
                fact["label"], str(fact["served_by"] or "unknown"), verdict, str(fact["detail"])[:70]
            )
        console.print(table)
    phases = Table(title="Phases", title_justify="left")
    for column in ("phase", "title", "status", "time", "checks"):
        phases.add_column(column)
    for phase in summary["phases"]:
        counts = (phase.get("accounting") or {}).get("counts") or {}
        missing = (phase.get("accounting") or {}).get("missing") or []
        skipped = counts.get("not_exercised", counts.get("skip", 0))
        checks = f"{counts.get('pass', 0)}✓ {counts.get('fail', 0)}✗ {skipped} not exercised"
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
    criteria.add_column("evidence / why not exercised")
    for criterion in summary.get("criteria", []):
        evidence = ", ".join(f"{e['ref']}={e['status']}" for e in criterion["evidence"])
        if criterion["status"] != "pass" and criterion.get("reason"):
            evidence = str(criterion["reason"])[:160]
        criteria.add_row(criterion["title"], _styled(criterion["status"]), evidence)
    console.print(criteria)
    target = summary.get("target_duration_s")
    took = summary["duration_s"]
    timing = f"{took:.1f}s" + (f" (target {target:.0f}s)" if target else "")
    line = summary.get("status_line") or summary["status"]
    colour = STATUS_STYLE.get(summary["status"], "white")
    console.print(f"run {summary['run_id']}: [{colour}]{line}[/] in {timing}")
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
    plan: Path | None = typer.Option(
        None,
        "--plan",
        help="A plan file, or the name of a plan shipped with beacon (day1, smoke). "
        "Default: the shipped Day-1 plan, from any folder.",
        show_default=False,
    ),
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
    topology: str = typer.Option(
        "embedded",
        "--topology",
        help="Without --runner: 'embedded' (one `beacon serve --embedded` on SQLite) or 'service' "
        "(`beacon serve` + one `beacon worker` process per region on PostgreSQL and Redis: DATABASE_URL / "
        "REDIS_URL, else a fresh database on 127.0.0.1:5432 and a fresh key prefix on 127.0.0.1:6379).",
    ),
    require_all: bool = typer.Option(
        False, "--require-all", help="A criterion not exercised (a substitute served) fails the run."
    ),
    live: bool = typer.Option(
        False,
        "--live",
        help="The live run (sets live=true): real backends per region, a GPU, the plan's models, Golem status.",
    ),
    runner_key: list[str] = typer.Option(
        [], "--runner-key", help="Pin a runner receipt key (base64): T+45 trusts only pinned keys."
    ),
    log_key: list[str] = typer.Option(
        [], "--log-key", help="Pin a transparency-log verifier key (C2SP vkey): T+45 trusts only pinned keys."
    ),
    pin_from: Path | None = typer.Option(
        None,
        "--pin-from",
        help="Pin the keys of a previous run's attestation.json (its runner and log keys).",
    ),
) -> None:
    """Run the Day-1 plan phase by phase with papermill and write reports/<run-id>/index.html.

    Exits 0 when every phase passed and no success criterion failed (criteria not exercised are
    listed, and fail the run with --require-all), 1 otherwise, 2 when the run could not start (bad
    plan or parameter, no kernel, runner did not start).
    """
    import os

    from beacon.harness.launcher import EmbeddedRunnerError
    from beacon.harness.plan import PlanError
    from beacon.harness.runner import TOPOLOGIES, HarnessError, RunOptions, run_plan
    from beacon.harness.trust import PinError, pinned_keys

    console = Console(stderr=True)
    chosen = next((t for t in TOPOLOGIES if t == topology), None)
    if chosen is None:
        raise typer.BadParameter(f"{topology!r}: use {' or '.join(TOPOLOGIES)}", param_hint="--topology")
    if runner and chosen != "embedded":
        raise typer.BadParameter("--topology starts a runner: leave out --runner", param_hint="--topology")
    try:
        pins = pinned_keys(runner_key, log_key, pin_from)
    except PinError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
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
        topology=chosen,
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        require_all=require_all,
        live=live,
        pins=pins,
    )
    try:
        outcome = run_plan(options, console)
    except (PlanError, HarnessError, EmbeddedRunnerError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    print_summary(outcome.summary, outcome.run_dir, Console())
    raise typer.Exit(outcome.exit_code)


def report(
    run_dirs: list[Path] = typer.Argument(
        None, help="A run folder (reports/<run-id>); with --compare, two or more.", show_default=False
    ),
    compare: bool = typer.Option(
        False, "--compare", help="Compare the runs A B [C …] (A is the baseline) and write an HTML page."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="With --compare: the page to write (default: compare-A-vs-B….html beside the runs).",
    ),
    as_json: bool = typer.Option(False, "--json", help="With --compare: print the comparison as JSON."),
) -> None:
    """Re-render reports/<run-id>/index.html from its summary.json, or compare runs (--compare A B [C …])."""
    from beacon.harness.report import render_report
    from beacon.harness.summary import load_summary

    console = Console()
    folders = list(run_dirs or [])
    if compare:
        from beacon.harness.compare import compare_runs, default_output, print_comparison, render_comparison

        try:
            diff = compare_runs(folders)
            page = render_comparison(folders, out or default_output(folders))
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(diff, indent=2, default=str))
            return
        print_comparison(diff, console)
        console.print(f"wrote {page}")
        return
    if len(folders) != 1:
        raise typer.BadParameter("give one run folder, or --compare A B [C …]")
    run_dir = folders[0]
    try:
        path = render_report(run_dir)
        summary = load_summary(run_dir)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    print_summary(summary, run_dir, console)
    console.print(f"re-rendered {path}")


def verify_report_command(
    run_dir: Path = typer.Argument(..., help="A run folder, reports/<run-id>."),
    runner_key: str | None = typer.Option(None, "--runner-key", help="Pin the runner's public key (base64)."),
    log_vkey: str | None = typer.Option(None, "--log-vkey", help="Pin the log's verifier key (C2SP vkey)."),
) -> None:
    """Check a run folder offline: file hashes, the receipt's signature, its inclusion in the log.

    Exits 0 when every check passes, 1 otherwise (:class:`beacon.errors.ExitCode`).
    """
    from beacon.errors import ExitCode
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
    raise typer.Exit(ExitCode.VERIFIED if verdict.ok else ExitCode.NOT_VERIFIED)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.command("day1")(day1)
    app.command("report")(report)
    app.command("verify-report")(verify_report_command)
