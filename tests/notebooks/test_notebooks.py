"""The phase notebooks: stored without outputs, in the plan, and — executed with papermill against an
embedded runner — every phase passes with every check the plan declares."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from beacon.harness.attest import verify_report
from beacon.harness.golem_checks import CHECKS as GOLEM_CHECKS
from beacon.harness.plan import load_plan
from beacon.harness.runner import RunOptions, RunOutcome, run_plan

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "test_plans" / "day1.yaml"


def tracked_notebooks() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "notebooks/*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed] or sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", tracked_notebooks(), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {index} carries outputs"
        assert cell.get("execution_count") is None, f"{path.name} cell {index} carries an execution count"
        assert "papermill" not in cell.get("metadata", {}), (
            f"{path.name} cell {index} carries papermill metadata"
        )
    assert notebook["metadata"]["kernelspec"]["name"] == "beacon"


def test_every_notebook_is_a_phase_of_the_plan() -> None:
    """Every notebook directly in notebooks/ is a phase (notebooks/analysis/ holds the analysts' own)."""
    plan = load_plan(PLAN)
    in_plan = {plan.notebook_path(p).resolve() for p in plan.phases}
    phases = {p.resolve() for p in tracked_notebooks() if p.parent.name == "notebooks"}
    assert phases == in_plan
    assert plan.validate_notebooks() == []


@pytest.fixture(scope="module")
def day1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunOutcome]:
    """The whole Day-1 plan, once, against an embedded runner."""
    out = tmp_path_factory.mktemp("reports")
    yield run_plan(RunOptions(plan_path=PLAN, out_dir=out, run_id="day1"), Console(stderr=True))


def phase_of(outcome: RunOutcome, phase_id: str) -> dict[str, Any]:
    return next(p for p in outcome.summary["phases"] if p["id"] == phase_id)


# Checks that may be not exercised on this machine, and only for these reasons: the embedded runner's
# substitutes (SQLite, the in-process queue, llama.cpp on the CPU) or hardware and access it lacks.
ALLOWED_NOT_EXERCISED = {
    ("t-60", "gpu_check"): "a substitute for gpu",
    ("t-60", "gpu_acceleration"): "inference on the CPU",
    ("t-60", "ollama_models"): "no region is served by Ollama",
    ("t-60", "ollama_latency"): "no Ollama host",
    ("t-60", "backends_real"): "served by llamacpp",
    ("t-60", "golem_provider"): "no region is served by Golem",
    ("t-30", "config_persisted"): "served by sqlite",
    ("t-30", "queue_health"): "served by inprocess",
    ("t-30", "database_connectivity"): "served by sqlite",
    ("t-30", "gpu_monitoring"): "served by cpu",
    ("t-0", "gpu_cpu_sampled"): "served by cpu",
    ("cors", "diffs_structure"): "0 items",  # the phase runs before the multi-region jobs
    ("t+15", "inference_latency_under_target"): "measured on the CPU",
    **{("t+15", check): "the Golem devnet could not start here" for check in GOLEM_CHECKS},
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("phase_id", [p.id for p in load_plan(PLAN).phases])
def test_each_phase_passes_with_every_declared_check(day1: RunOutcome, phase_id: str) -> None:
    phase = phase_of(day1, phase_id)
    results = phase["results"]
    assert results is not None, f"{phase_id} wrote no results ({phase['error']})"
    checks = {c["id"]: c for c in results["checks"]}
    problems = []
    for declared in phase["declared_checks"]:
        check = checks.get(declared["id"])
        if check is None:
            problems.append(f"{declared['id']}: missing")
        elif check["status"] == "fail":
            problems.append(
                f"{declared['id']}: expected {check['expected']!r}, got {check['actual']!r} — {check['detail']}"
            )
        elif check["status"] == "not_exercised":
            reason = ALLOWED_NOT_EXERCISED.get((phase_id, declared["id"]))
            if reason is None or reason not in (check["detail"] or ""):
                problems.append(f"{declared['id']}: not exercised ({check['detail']})")
    assert not problems, "\n".join(problems)
    assert phase["status"] == "passed", phase["error"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_run_fails_no_criterion_names_what_it_did_not_exercise_and_attests_itself(
    day1: RunOutcome,
) -> None:
    failing = [f"{c['title']}: {c['reason']}" for c in day1.summary["criteria"] if c["status"] == "fail"]
    assert not failing, failing
    verdicts = {c["id"]: c for c in day1.summary["criteria"]}
    # no criterion passes on a substitute: on the embedded runner these four are not exercised, and say why
    for criterion_id, lacking in {
        "signed_job_per_region": "Ollama/Golem",
        "sub_2s_inference": "GPU",
        "queue_no_deadlocks": "Redis",
        "ipfs_storage": "IPFS",
    }.items():
        assert verdicts[criterion_id]["status"] == "not_exercised", verdicts[criterion_id]
        assert lacking in verdicts[criterion_id]["not_exercised"]
    assert day1.summary["status_line"].startswith("passed — ")
    assert day1.exit_code == 0
    verdict = verify_report(day1.run_dir)
    assert verdict.ok, verdict.checks
    html = (day1.run_dir / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    for phase in day1.summary["phases"]:
        assert (day1.run_dir / phase["executed"]).is_file()
        assert (day1.run_dir / phase["html"]).is_file()
