"""Runs compared over three runs: criteria, checks, latency, end-to-end, API, queue, environment, and
the bias findings (answers that changed class, similarity drift), in the terminal, JSON and HTML."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from beacon.cli import app
from beacon.client import BeaconClient
from beacon.harness import findings
from beacon.harness.compare import compare_runs, render_comparison
from beacon.harness.results import PhaseResults
from beacon.harness.verification import fetch_trust
from tests.harness.conftest import SeededRunner
from tests.harness.test_report import make_run


def with_findings(run_dir: Path, seeded: SeededRunner, job_id: str) -> None:
    """Save ``job_id``'s real difference report in the run folder, as T+45 does, and list it."""
    artefacts = run_dir / "artefacts" / "t+45"
    with BeaconClient(seeded.url) as client:
        trust = fetch_trust(client, artefacts)
        rows = findings.collect_difference_reports(
            client, [job_id], public_keys=trust.public_keys, vkeys=trust.vkeys, out_dir=artefacts / "dr"
        )
    results = PhaseResults(run_dir / "results" / "t+45.json", phase="t+45")
    results.table(findings.TABLE, rows)
    results.finish()
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["phases"][1]["results"]["tables"][findings.TABLE] = rows
    summary["phases"][1]["results"]["measurements"] = [
        {"name": "end_to_end_s", "value": 4.0 + len(run_dir.name), "unit": "s", "tags": {"region": "EU"}}
    ]
    if run_dir.name == "c":  # another host and backend, slower
        summary["host"]["gpu"] = [{"name": "NVIDIA H200"}]
        for row in summary["phases"][0]["results"]["tables"]["executions"]:
            row["backend"], row["latency_s"] = "ollama", row["latency_s"] * 3
    (run_dir / "summary.json").write_text(json.dumps(summary))


def three_runs(tmp_path: Path, seeded: SeededRunner) -> list[Path]:
    a, b, c = make_run(tmp_path, "a"), make_run(tmp_path, "b", status="fail"), make_run(tmp_path, "c")
    with_findings(a, seeded, seeded.job_id)
    with_findings(b, seeded, seeded.job_id)
    with_findings(c, seeded, seeded.answered_job_id)  # ASIA answers where it refused before
    return [a, b, c]


def test_three_runs_compared(seeded_runner: SeededRunner, tmp_path: Path) -> None:
    runs = three_runs(tmp_path, seeded_runner)
    diff = compare_runs(runs)
    assert [r["label"] for r in diff["runs"]] == ["A", "B", "C"]
    (check,) = diff["changed_checks"]
    assert (check["check"], check["A"], check["B"], check["C"]) == (
        "receipts_retrievable",
        "pass",
        "fail",
        "pass",
    )
    assert diff["criteria"][0]["changed"] and diff["criteria"][0]["B"] == "fail"
    env = {r["field"]: r for r in diff["environment"]}
    assert env["host.gpu"]["changed"] and env["host.gpu"]["C"] == "NVIDIA H200"
    assert env["backends"]["changed"] and env["backends"]["C"] == "ollama"
    assert not env["models"]["changed"]
    latency = {(r["run"], r["region"]): r for r in diff["latency"]}
    assert latency[("C", "EU")]["p95_s"] > 2.5 * latency[("A", "EU")]["p95_s"]
    assert {r["run"] for r in diff["end_to_end"]} == {"A", "B", "C"}
    assert {r["run"] for r in diff["api"]} == {"A", "B", "C"}
    assert all(r["working_share"] is not None for r in diff["queue"])

    bias = diff["bias"]
    assert [r["reports"] for r in bias["reports"]] == [1, 1, 1]
    changed = {(r["region"], r["question_id"]): r for r in bias["class_changes"]}
    assert set(changed) == {("ASIA", "tiananmen_neutral")}
    asia = changed[("ASIA", "tiananmen_neutral")]
    assert (asia["A"], asia["B"], asia["C"]) == ("refusal", "refusal", "complete")
    drifted = {(r["question_id"], r["pair"]) for r in bias["similarity_drift"]}
    assert ("tiananmen_neutral", "ASIA–EU") in drifted and ("math_basic", "EU–US") not in drifted

    page = render_comparison(runs, tmp_path / "compare.html").read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert "Answers that changed class" in page and "NVIDIA H200" in page


def test_the_cli_compares_three_runs_and_refuses_bad_input(
    seeded_runner: SeededRunner, tmp_path: Path
) -> None:
    runs = three_runs(tmp_path, seeded_runner)
    cli = CliRunner()
    result = cli.invoke(app, ["report", "--compare", *map(str, runs)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "receipts_retrievable" in result.output and "changed class" in result.output
    assert (tmp_path / "compare-a-vs-b-vs-c.html").is_file()
    as_json = cli.invoke(
        app, ["report", "--compare", str(runs[0]), str(runs[2]), "--json", "--out", str(tmp_path / "x.html")]
    )
    assert as_json.exit_code == 0 and json.loads(as_json.output)["runs"][1]["run_id"] == "c"
    assert cli.invoke(app, ["report", "--compare", str(runs[0])]).exit_code == 2
    rendered = cli.invoke(app, ["report", str(runs[0])])
    assert rendered.exit_code == 0 and "re-rendered" in rendered.output
    (runs[1] / "summary.json").write_text("{}")
    broken = cli.invoke(app, ["report", "--compare", *map(str, runs)])
    assert broken.exit_code == 2 and "not a Beacon run summary" in " ".join(broken.output.split())
