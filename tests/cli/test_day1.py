"""``beacon day1`` refuses what it cannot run with exit status 2, before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from beacon.cli import app


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--plan", "test_plans/no-such-plan.yaml"], "cannot read plan"),
        (["--phases", "t-15,nope"], "unknown phase(s) nope"),
        (["-p", "colour=red"], "unknown parameter 'colour'"),
        (["-p", "t-15.rate_limit_probe=many"], "expected int"),
        (["-p", "runner_url=http://x"], "set by the harness"),
        (["-p", "novalue"], "NAME=VALUE"),
        (["--topology", "mesh"], "use embedded or service"),
        (["--topology", "service", "--runner", "http://127.0.0.1:9"], "leave out --runner"),
        (["--log-key", "not-a-vkey"], "--log-key"),
        (["--pin-from", "no-such-run"], "cannot read the attestation"),
    ],
)
def test_refusals_exit_2_before_any_runner_starts(arguments: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["day1", "--out", str(tmp_path / "reports"), *arguments])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not any((tmp_path / "reports").glob("*/summary.json"))


def test_help_explains_itself() -> None:
    for command in (["day1"], ["report"], ["verify-report"], ["gpu", "check"], ["gpu", "watch"]):
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0
        assert len(result.output.split()) > 20


def test_the_summary_says_what_served_and_what_was_not_exercised(tmp_path: Path) -> None:
    from rich.console import Console

    from beacon.cli.day1 import print_summary

    summary = {
        "run_id": "r",
        "status": "passed",
        "status_line": "passed — 1 criteria not exercised (Redis)",
        "duration_s": 1.0,
        "served_by": {
            "queue": {"label": "Redis", "served_by": "inprocess", "exercised": False, "detail": "queue kind"},
            "database": {
                "label": "PostgreSQL",
                "served_by": "postgresql",
                "exercised": True,
                "detail": "dialect",
            },
        },
        "phases": [],
        "criteria": [
            {
                "title": "Queue",
                "status": "not_exercised",
                "reason": "Redis not exercised: served by inprocess",
                "evidence": [],
            }
        ],
    }
    console = Console(record=True, width=200)
    print_summary(summary, tmp_path, console)
    text = console.export_text()
    assert "substitute: not exercised" in text and "inprocess" in text
    assert "Redis not exercised: served by inprocess" in text
    assert "passed — 1 criteria not exercised (Redis)" in text
