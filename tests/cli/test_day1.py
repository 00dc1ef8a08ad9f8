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
