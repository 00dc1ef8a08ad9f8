"""The analysts' notebooks (notebooks/analysis/) executed with papermill, as by hand: over run folders
with real signed difference reports they show the findings and compare three runs; without what
they need they stop with a message that says what to run first. Nothing is written under notebooks/."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from tests.harness.conftest import SeededRunner, seeded_runner  # noqa: F401 (the fixture)
from tests.harness.test_compare import three_runs
from tests.harness.test_report import make_run
from tests.notebooks.support import NOTEBOOKS, run_notebook, untracked_under_notebooks

ANALYSIS = NOTEBOOKS / "analysis"


def execute(name: str, executed: Path, **parameters: object) -> str:
    return run_notebook(ANALYSIS / name, executed, **parameters)


@pytest.mark.timeout(600)
def test_findings_and_comparison_notebooks(seeded_runner: SeededRunner, tmp_path: Path) -> None:  # noqa: F811
    before = untracked_under_notebooks()
    (tmp_path / "reports").mkdir()
    runs = three_runs(tmp_path / "reports", seeded_runner)
    findings = execute("findings.ipynb", tmp_path / "findings.out.ipynb", run_dir=str(runs[0]))
    assert "image/png" in findings and "tiananmen_neutral" in findings and "refusal" in findings
    compared = execute(
        "compare-runs.ipynb",
        tmp_path / "compare.out.ipynb",
        run_dirs=[str(r) for r in runs],
        out=str(tmp_path / "c.html"),
    )
    assert "image/png" in compared and "complete" in compared and (tmp_path / "c.html").is_file()
    assert untracked_under_notebooks() == before


@pytest.mark.timeout(600)
def test_without_what_they_need_they_say_what_to_run(tmp_path: Path) -> None:
    plain = make_run(tmp_path, "plain")  # no T+45 results in the run folder
    with pytest.raises(papermill.PapermillExecutionError, match="needs the results of t\\+45"):
        execute("findings.ipynb", tmp_path / "f.ipynb", run_dir=str(plain))
    with pytest.raises(papermill.PapermillExecutionError, match="two or more finished runs"):
        execute("compare-runs.ipynb", tmp_path / "c.ipynb", run_dirs=[str(plain)])
