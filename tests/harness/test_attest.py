"""Self-attestation: the runner signs and logs a run's hashes; verify-report checks them offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beacon.cli import app
from beacon.harness.attest import attest_run, verify_report
from beacon.harness.launcher import EmbeddedRunner
from beacon.keys import Ed25519Key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner() -> Iterator[EmbeddedRunner]:
    with EmbeddedRunner() as embedded:
        yield embedded


def make_run(path: Path) -> Path:
    (path / "results").mkdir(parents=True)
    (path / "inputs" / "notebooks").mkdir(parents=True)
    (path / "results" / "t-0.json").write_text('{"schema": "beacon.phase-results/v1"}')
    (path / "inputs" / "notebooks" / "05-infrastructure.ipynb").write_text("{}")
    (path / "summary.json").write_text(
        json.dumps(
            {
                "schema": "beacon.run-summary/v1",
                "run_id": path.name,
                "status": "passed",
                "started_at": 1.0,
                "finished_at": 2.0,
                "plan": {"name": "day1"},
                "phases": [{"id": "t-0", "parameters": {"live": False}}],
            }
        )
    )
    return path


@pytest.fixture
def attested(tmp_path: Path, runner: EmbeddedRunner) -> Path:
    run_dir = make_run(tmp_path / "run-1")
    assert runner.credentials is not None
    attest_run(run_dir, runner.url, runner.credentials.operator_token)
    return run_dir


def runner_key(run_dir: Path) -> str:
    record = json.loads((run_dir / "attestation.json").read_text())
    return record["runner_keys"]["keys"][0]["public_key"]


def test_an_untouched_run_verifies_with_pinned_keys(attested: Path) -> None:
    record = json.loads((attested / "attestation.json").read_text())
    assert set(record["document"]["files"]) == {
        "summary.json",
        "results/t-0.json",
        "inputs/notebooks/05-infrastructure.ipynb",
    }
    vkey = record["log_keys"]["keys"][0]["vkey"]
    verdict = verify_report(attested, runner_key=runner_key(attested), log_vkey=vkey)
    assert verdict.ok, verdict.checks
    assert [name for name, _, _ in verdict.checks] == [
        "file hashes",
        "receipt covers the document",
        "receipt signature",
        "inclusion in the transparency log",
    ]


def test_a_tampered_file_fails(attested: Path) -> None:
    (attested / "results" / "t-0.json").write_text('{"schema": "beacon.phase-results/v1", "forged": true}')
    verdict = verify_report(attested)
    assert not verdict.ok
    assert ("file hashes", False) in [(name, ok) for name, ok, _ in verdict.checks]
    assert "results/t-0.json" in dict((n, d) for n, _, d in verdict.checks)["file hashes"]


def test_a_rewritten_attestation_fails(attested: Path) -> None:
    path = attested / "attestation.json"
    record = json.loads(path.read_text())
    record["document"]["files"]["results/t-0.json"] = "0" * 64
    (attested / "results" / "t-0.json").write_text("forged, with its hash rewritten in the document")
    record["document"]["files"]["results/t-0.json"] = (
        __import__("hashlib").sha256((attested / "results" / "t-0.json").read_bytes()).hexdigest()
    )
    path.write_text(json.dumps(record))
    verdict = dict((name, ok) for name, ok, _ in verify_report(attested).checks)
    assert verdict["file hashes"] is True
    assert verdict["receipt covers the document"] is False  # the signed receipt still holds the old hashes


def test_a_foreign_runner_key_fails(attested: Path) -> None:
    other = Ed25519Key.generate().public_key_b64
    verdict = dict((name, ok) for name, ok, _ in verify_report(attested, runner_key=other).checks)
    assert verdict["receipt signature"] is False


def test_cli_exit_codes(attested: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    ok = cli.invoke(app, ["verify-report", str(attested), "--runner-key", runner_key(attested)])
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output
    missing = cli.invoke(app, ["verify-report", str(make_run(tmp_path / "never-attested"))])
    assert missing.exit_code == 1 and "attestation present" in missing.output
