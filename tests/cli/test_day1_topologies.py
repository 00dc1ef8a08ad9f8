"""``beacon day1`` runs the whole plan, from a folder outside the checkout, in both topologies it
starts: the embedded default, and ``--topology service`` (``beacon serve`` + a ``beacon worker``
process per region) on this machine's PostgreSQL and Redis — where "Stop job worker" stops and
restarts a real worker process. Bounded: each run has a wall-clock limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from beacon.config import without_settings
from tests.services import PG_HOST, PG_PORT, REDIS_HOST, REDIS_PORT, require_service

RUN_LIMIT_S = 900


def run_day1(
    tmp_path: Path, *arguments: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    elsewhere = tmp_path / "elsewhere"  # not the checkout: plan and notebooks come with the package
    elsewhere.mkdir()
    env = {**without_settings(os.environ), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from beacon.cli import main; main()", "day1", "--out", str(tmp_path / "reports"),
         "--run-id", "run", "--no-html", *arguments],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=RUN_LIMIT_S,
    )  # fmt: skip
    run_dir = tmp_path / "reports" / "run"
    summary_path = run_dir / "summary.json"
    assert summary_path.is_file(), f"no summary; exit {done.returncode}\n{done.stderr[-4000:]}"
    return done, json.loads(summary_path.read_text()), run_dir


def failures(summary: dict[str, Any]) -> list[str]:
    out = [f"criterion {c['id']}: {c['status']}" for c in summary["criteria"] if c["status"] == "fail"]
    for phase in summary["phases"]:
        if phase["status"] != "passed":
            checks = (phase.get("results") or {}).get("checks") or []
            failed = [f"{c['id']}={c.get('actual')!r}"[:200] for c in checks if c["status"] == "fail"]
            out.append(f"phase {phase['id']} {phase['status']} {phase.get('error')}: {failed}")
    return out


@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 60)
def test_the_whole_plan_passes_on_the_embedded_default_from_any_folder(tmp_path: Path) -> None:
    done, summary, run_dir = run_day1(tmp_path)
    assert summary["runner"]["topology"] == "embedded" and summary["runner"]["embedded"]
    assert (run_dir / "logs" / "runner.log").is_file()
    drill = json.loads((run_dir / "artefacts" / "emergency" / "drill.json").read_text())
    assert {step["how"]["via"] for step in drill if "how" in step} == {"admin_api"}  # its in-process worker
    assert done.returncode == 0, failures(summary)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(RUN_LIMIT_S + 60)
def test_the_whole_plan_passes_on_the_service_topology(tmp_path: Path) -> None:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    done, summary, run_dir = run_day1(tmp_path, "--topology", "service")
    runner = summary["runner"]
    assert runner["topology"] == "service" and not runner["embedded"]
    assert runner["database_created"] and runner["redis_prefix"].startswith("beacon-day1-")
    logs = run_dir / "logs"
    for name in ("runner.log", "worker-US.log", "worker-EU.log", "worker-ASIA.log"):
        assert (logs / name).stat().st_size > 0, name
    # "Stop job worker": the harness ended a real worker process and started another one.
    drill = json.loads((run_dir / "artefacts" / "emergency" / "drill.json").read_text())
    stopped = next(step["how"] for step in drill if step["action"] == "worker stopped")
    started = next(step["how"] for step in drill if step["action"] == "worker started")
    assert stopped["via"] == started["via"] == "supervisor"
    assert stopped["exit_status"] == 0 and started["pid"] != stopped["pid"]
    history = [(e["event"], e["role"], e["region"]) for e in runner["history"]]
    assert history.count(("started", "worker", stopped["region"])) == 2
    # The run's database was made for it, and dropped at the end.
    from tests.harness.test_topology import database_exists

    assert not database_exists(runner["database_created"])
    assert done.returncode == 0, failures(summary)  # and the whole plan passed on it
