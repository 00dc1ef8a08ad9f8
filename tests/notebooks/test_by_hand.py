"""Notebooks 07 and 09 run by hand in a JupyterLab session (a session file, an empty runner_url, the
kernel in notebooks/): out of order they stop with their message; against a runner whose jobs have
no receipts or bundles, and over an empty results folder, their checks fail and say so; everything
they write goes to the session's run folder, nothing under notebooks/."""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

from beacon.harness.checks import ALL_PASSED
from beacon.harness.results import load_phase_results
from beacon.harness.session import SESSION_FILE_ENV, write_session_file
from tests.harness.conftest import TOKENS, SeededRunner, seeded_runner  # noqa: F401 (the fixture)
from tests.notebooks.support import NOTEBOOKS, run_notebook, untracked_under_notebooks


@pytest.fixture
def lab_session(seeded_runner: SeededRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    run_dir = tmp_path / "lab-run"
    path = write_session_file(run_dir / "session.json", runner_url=seeded_runner.url, run_dir=run_dir)
    monkeypatch.setenv(SESSION_FILE_ENV, str(path))
    for role, token in TOKENS.items():
        monkeypatch.setenv(f"{role.upper()}_TOKEN", token)
    return run_dir


def by_hand(name: str, executed: Path, **parameters: object) -> None:
    run_notebook(NOTEBOOKS / name, executed, **parameters)


def statuses(path: Path) -> dict[str, str]:
    return {c["id"]: c["status"] for c in load_phase_results(path)["checks"]}


@pytest.mark.timeout(600)
def test_results_verification_out_of_order_and_on_a_failing_runner(
    lab_session: Path,
    seeded_runner: SeededRunner,  # noqa: F811
    tmp_path: Path,
) -> None:
    before = untracked_under_notebooks()
    with pytest.raises(papermill.PapermillExecutionError, match=r"needs the results of t\+15"):
        by_hand("07-results-verification.ipynb", tmp_path / "07-first.ipynb")
    by_hand("07-results-verification.ipynb", tmp_path / "07.ipynb", job_ids=[seeded_runner.job_id])
    results = lab_session / "results" / "t+45.json"
    got = statuses(results)
    assert got["receipts_retrievable"] == "fail" and got["bundles_verified"] == "fail"
    assert got["diffs_available"] == "pass" and got["diff_reports_signed"] == "pass"
    assert got["dead_letters_empty"] == "pass"
    saved = lab_session / "artefacts" / "t+45" / "difference-reports" / f"{seeded_runner.job_id}.json"
    assert json.loads(saved.read_text()) == seeded_runner.report
    assert untracked_under_notebooks() == before


@pytest.mark.timeout(600)
def test_wrap_up_over_an_empty_results_folder_fails(lab_session: Path, tmp_path: Path) -> None:
    before = untracked_under_notebooks()
    by_hand("09-wrap-up.ipynb", tmp_path / "09.ipynb")
    document = load_phase_results(lab_session / "results" / "t+60.json")
    got = {c["id"]: c["status"] for c in document["checks"]}
    assert got["all_phases_reported"] == "fail" and got["findings_summarised"] == "not_exercised"
    steps = [row["step"] for row in document["tables"]["next_steps"]]
    assert ALL_PASSED not in steps and "every check passed" not in (tmp_path / "09.ipynb").read_text()
    assert untracked_under_notebooks() == before
