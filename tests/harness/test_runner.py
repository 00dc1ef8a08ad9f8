"""The papermill runner: phases pass, fail, raise, lose their kernel or hang — the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import psutil
import pytest
import yaml
from rich.console import Console

from beacon.harness.plan import PlanError
from beacon.harness.runner import RunOptions, run_plan

pytestmark = pytest.mark.slow

PREAMBLE = "from beacon.harness import PhaseResults\nresults = PhaseResults(results_path, phase={phase!r})\n"
FINISH = "results.finish()\n"

BODIES = {
    "ok": "results.check('done', expected=1, actual=1)\n",
    "failing": "results.check('done', expected=1, actual=2)\n",
    "raises": "results.check('done', expected=1, actual=1)\nraise RuntimeError('boom in a cell')\n",
    "dies": "import os, pathlib\npathlib.Path(results_path).with_suffix('.pid').write_text(str(os.getpid()))\n"
    "results.check('done', expected=1, actual=1)\nos._exit(7)\n",
    # Stop papermill itself (the kernel's parent): only the wall-clock watchdog can end this phase.
    "hangs": "import os, pathlib, signal\npathlib.Path(results_path).with_suffix('.pid').write_text(str(os.getpid()))\n"
    "results.check('done', expected=1, actual=1)\nos.kill(os.getppid(), signal.SIGSTOP)\nimport time; time.sleep(600)\n",
    "incomplete": "pass  # never records its check\n",
    # A live runner's log records its end (uvicorn's last line), then the phase would wait a minute for it.
    "runner_ends": "import pathlib, time\nlog = pathlib.Path(results_path).parents[3] / 'runner.log'\n"
    "with log.open('a') as f: f.write('INFO:     Finished server process [4242]\\n')\n"
    "results.check('done', expected=1, actual=1)\ntime.sleep(60)\n",
}


def make_plan(tmp_path: Path, phases: list[str], timeout_s: float = 30) -> Path:
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / "test_plans").mkdir(exist_ok=True)
    entries = []
    for phase in phases:
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "beacon", "display_name": "Beacon", "language": "python"}
        parameters = nbformat.v4.new_code_cell('results_path = ""\nlabel = "x"\n')
        parameters.metadata["tags"] = ["parameters"]
        notebook.cells = [
            parameters,
            nbformat.v4.new_code_cell(PREAMBLE.format(phase=phase)),
            nbformat.v4.new_code_cell(BODIES[phase]),
            nbformat.v4.new_code_cell(FINISH),
        ]
        nbformat.write(notebook, str(tmp_path / "notebooks" / f"{phase}.ipynb"))
        entries.append(
            {
                "id": phase,
                "title": phase,
                "section": "test",
                "notebook": f"notebooks/{phase}.ipynb",
                "timeout_s": timeout_s,
                "parameters": {"label": {"type": "str", "default": "x"}},
                "checks": [{"id": "done", "title": "done"}],
            }
        )
    plan = {
        "schema": "beacon.test-plan/v1",
        "name": "fixture",
        "title": "Fixture plan",
        "parameters": {"results_path": {"type": "str", "default": "", "injected": True}},
        "phases": entries,
        "success_criteria": [{"id": "ok", "title": "ok", "evidence": [f"{phases[0]}/done"]}],
    }
    path = tmp_path / "test_plans" / "fixture.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def options(tmp_path: Path, plan: Path, **changes: object) -> RunOptions:
    base = RunOptions(
        plan_path=plan,
        runner_url="http://127.0.0.1:9",  # nothing listens: these notebooks need no runner
        out_dir=tmp_path / "reports",
        attest=False,
        html=False,
        run_id="run",
        monitor_interval_s=5.0,
        kernel_grace_s=10.0,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def gone(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_every_failure_mode_becomes_a_phase_verdict_and_the_run_goes_on(tmp_path: Path) -> None:
    phases = ["ok", "failing", "raises", "dies", "hangs", "incomplete"]
    plan = make_plan(tmp_path, phases, timeout_s=6)
    outcome = run_plan(options(tmp_path, plan), Console(quiet=True))
    by_id = {p["id"]: p for p in outcome.summary["phases"]}
    assert by_id["ok"]["status"] == "passed"
    assert by_id["failing"]["status"] == "failed"
    assert by_id["failing"]["accounting"]["failed"] == ["done"]
    assert by_id["raises"]["status"] == "error"
    assert by_id["raises"]["error"]["kind"] == "cell_error"
    assert "boom in a cell" in by_id["raises"]["error"]["message"]
    assert by_id["raises"]["results"]["checks"][0]["status"] == "pass"  # what it had established is kept
    assert by_id["dies"]["status"] == "error"
    assert by_id["dies"]["error"]["kind"] == "kernel_died"
    assert by_id["hangs"]["status"] == "error"
    assert by_id["hangs"]["error"]["kind"] == "timeout"
    assert by_id["hangs"]["duration_s"] < 6 + 10 + 10
    assert by_id["incomplete"]["status"] == "failed"
    assert by_id["incomplete"]["accounting"]["missing"] == ["done"]
    run_dir = outcome.run_dir
    assert gone(run_dir / "results" / "hangs.pid"), "the hung kernel outlived its phase"
    assert gone(run_dir / "results" / "dies.pid")
    assert outcome.exit_code == 1
    assert outcome.summary["criteria"][0]["status"] == "pass"
    executed = json.loads((run_dir / "notebooks" / "01-ok.ipynb").read_text())
    assert executed["cells"][1]["metadata"]["tags"] == ["injected-parameters"]
    cells = by_id["ok"]["cells"]
    assert all(cell["duration_s"] is not None for cell in cells)
    assert (run_dir / "index.html").is_file()
    assert (run_dir / "inputs" / "notebooks" / "ok.ipynb").is_file()


def test_a_relative_out_folder_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `beacon day1` defaults to --out reports/ (relative): phases run with the run folder as their cwd.
    plan = make_plan(tmp_path, ["ok"])
    monkeypatch.chdir(tmp_path)
    outcome = run_plan(options(tmp_path, plan, out_dir=Path("reports")), Console(quiet=True))
    assert [p["status"] for p in outcome.summary["phases"]] == ["passed"]
    assert outcome.run_dir == tmp_path / "reports" / "run"
    assert outcome.exit_code == 0


def test_fail_fast_skips_the_rest(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["failing", "ok"])
    outcome = run_plan(options(tmp_path, plan, fail_fast=True), Console(quiet=True))
    statuses = [p["status"] for p in outcome.summary["phases"]]
    assert statuses == ["failed", "skipped"]
    assert outcome.summary["phases"][1]["error"]["kind"] == "fail_fast"
    assert outcome.exit_code == 1


def test_parameters_are_refused_before_anything_runs(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["ok"])
    with pytest.raises(PlanError, match="unknown parameter 'colour'"):
        run_plan(options(tmp_path, plan, parameters={"colour": "red"}), Console(quiet=True))
    with pytest.raises(PlanError, match="expected str"):
        run_plan(options(tmp_path, plan, parameters={"ok.label": 3}), Console(quiet=True))
    with pytest.raises(PlanError, match="set by the harness"):
        run_plan(options(tmp_path, plan, parameters={"results_path": "/tmp/x"}), Console(quiet=True))
    with pytest.raises(PlanError, match="unknown phase"):
        run_plan(options(tmp_path, plan, phases=["nope"]), Console(quiet=True))
    assert not (tmp_path / "reports").exists()


def test_a_runner_that_ends_fails_the_phase_in_progress_and_the_report_says_so_first(tmp_path: Path) -> None:
    log = tmp_path / "runner.log"
    log.write_text("INFO:     Finished server process [1]\n")  # an earlier run's end: not this run's
    plan = make_plan(tmp_path, ["ok", "runner_ends", "failing"], timeout_s=60)
    outcome = run_plan(options(tmp_path, plan, runner_log_path=log), Console(quiet=True))
    by_id = {p["id"]: p for p in outcome.summary["phases"]}
    assert by_id["ok"]["status"] == "passed", by_id["ok"]["error"]
    assert by_id["runner_ends"]["status"] == "error"
    assert by_id["runner_ends"]["error"]["kind"] == "runner_exited"
    assert "Finished server process [4242]" in by_id["runner_ends"]["error"]["message"]
    assert by_id["runner_ends"]["duration_s"] < 30  # stopped when the runner ended, not after its sleep
    assert by_id["failing"]["status"] == "skipped" and by_id["failing"]["error"]["kind"] == "runner_exited"
    exited = outcome.summary["runner"]["exited"]
    assert exited["phase"] == "runner_ends" and "[4242]" in exited["how"]
    assert outcome.exit_code == 1 and outcome.summary["status"] == "failed"
    html = (outcome.run_dir / "index.html").read_text()
    assert html.index("RUNNER EXITED") < html.index("Success criteria")


def test_a_run_whose_runner_stays_up_has_no_runner_exit(tmp_path: Path) -> None:
    log = tmp_path / "runner.log"
    log.write_text("INFO:     Finished server process [1]\n")
    plan = make_plan(tmp_path, ["ok"])
    outcome = run_plan(options(tmp_path, plan, runner_log_path=log), Console(quiet=True))
    assert outcome.summary["runner"]["exited"] is None and outcome.exit_code == 0
