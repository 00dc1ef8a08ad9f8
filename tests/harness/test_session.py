"""The JupyterLab session file: written with names (never tokens), read when runner_url is empty;
phases that need earlier ones fail with a message saying what to run; `beacon lab` shares it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from beacon.harness import PhaseOrderError, PhaseResults, open_session, require_phases
from beacon.harness.session import SESSION_FILE_ENV, SessionFileError, read_session_file, write_session_file
from tests.harness.conftest import TOKENS, SeededRunner

BEACON = [sys.executable, "-c", "from beacon.cli import main; main()"]


def test_session_file_holds_names_not_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "a-secret-value")
    path = write_session_file(
        tmp_path / "run" / "session.json", runner_url="http://127.0.0.1:9", run_dir=tmp_path / "run"
    )
    text = path.read_text()
    assert "a-secret-value" not in text and '"admin": "ADMIN_TOKEN"' in text
    monkeypatch.delenv(SESSION_FILE_ENV, raising=False)
    assert read_session_file() is None
    monkeypatch.setenv(SESSION_FILE_ENV, str(path))
    assert read_session_file()["runner_url"] == "http://127.0.0.1:9"  # type: ignore[index]
    path.write_text("{}")
    with pytest.raises(SessionFileError, match=r"not a beacon\.lab-session/v1 file"):
        read_session_file()


def test_require_phases_says_what_to_run(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    with pytest.raises(
        PhaseOrderError, match=r"phase t\+45 needs the results of t\+15 in .*results: run that phase first"
    ):
        require_phases(results_dir, ["t+15"], phase="t+45")
    with pytest.raises(PhaseOrderError, match="no results folder"):
        require_phases(None, ["t+15"], phase="t+45")
    running = PhaseResults(results_dir / "t+15.json", phase="t+15")  # started, never finished
    with pytest.raises(PhaseOrderError):
        require_phases(results_dir, ["t+15"], phase="t+45")
    running.finish()
    require_phases(results_dir, ["t+15"], phase="t+45")


def test_open_session_joins_the_session_file(
    seeded_runner: SeededRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "lab-run"
    path = write_session_file(run_dir / "session.json", runner_url=seeded_runner.url, run_dir=run_dir)
    monkeypatch.setenv(SESSION_FILE_ENV, str(path))
    monkeypatch.setenv("OPERATOR_TOKEN", TOKENS["operator"])
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    session = open_session("")
    try:
        assert session.url == seeded_runner.url and session.embedded is None
        assert session.operator.whoami()["role"] == "operator"
        with pytest.raises(KeyError, match="ADMIN_TOKEN"):
            session.client("admin")
        assert session.results_file("t+45") == run_dir.resolve() / "results" / "t+45.json"
        assert session.artefacts_dir("t+45").resolve() == (run_dir / "artefacts" / "t+45").resolve()
        given = tmp_path / "day1" / "results" / "t+45.json"  # beacon day1's results_path wins
        assert (
            session.artefacts_dir("t+45", str(given)) == (tmp_path / "day1" / "artefacts" / "t+45").resolve()
        )
    finally:
        session.close()


def test_beacon_lab_runs_a_command_in_the_session(seeded_runner: SeededRunner, tmp_path: Path) -> None:
    script = (
        "import os, json; from beacon.harness import open_session; s = open_session(''); "
        "print(json.dumps({'url': s.url, 'run_dir': str(s.run_dir), 'file': os.environ['BEACON_SESSION_FILE']}))"
    )

    def lab(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*BEACON, "lab", "--runner", seeded_runner.url, "--run-dir", str(tmp_path / "r"), "--", *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = lab(sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["url"] == seeded_runner.url and Path(seen["run_dir"]) == (tmp_path / "r").resolve()
    assert Path(seen["file"]) == (tmp_path / "r" / "session.json").resolve()
    assert lab(sys.executable, "-c", "raise SystemExit(3)").returncode == 3  # the command's status is lab's
