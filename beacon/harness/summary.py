"""The run summary (``summary.json``): its phases, how it is built, and its reader.

The summary holds every phase's results, the criteria and the verdict of one run. The runner writes
it with :func:`build_summary`; the report, the comparison of runs and ``beacon day1`` read it back
through :func:`load_summary`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from beacon import __version__
from beacon.harness.components import Served
from beacon.harness.criteria import evaluate_criteria, run_verdict
from beacon.harness.plan import PhaseSpec, Plan
from beacon.harness.trust import PinnedKeys

SUMMARY_SCHEMA = "beacon.run-summary/v1"

PhaseStatus = Literal["passed", "failed", "error", "skipped"]


@dataclass
class PhaseRun:
    spec: PhaseSpec
    parameters: dict[str, Any]
    status: PhaseStatus = "skipped"
    error: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    notebook: str = ""
    executed: str | None = None
    html: str | None = None
    results: str | None = None
    log: str | None = None
    document: dict[str, Any] | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)
    accounting: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.spec.id,
            "title": self.spec.title,
            "section": self.spec.section,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "timeout_s": self.spec.timeout_s,
            "notebook": self.notebook,
            "executed": self.executed,
            "html": self.html,
            "results_path": self.results,
            "log": self.log,
            "parameters": self.parameters,
            "declared_checks": [{"id": c.id, "title": c.title, "plan": c.plan} for c in self.spec.checks],
            "accounting": self.accounting,
            "cells": self.cells,
            "results": self.document,
        }


def cell_timings(notebook_path: Path) -> list[dict[str, Any]]:
    """Per-cell timing and status from papermill's metadata in an executed notebook."""
    try:
        notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    cells = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("papermill", {})
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        first = next((line for line in source.splitlines() if line.strip()), "")
        tags = cell.get("metadata", {}).get("tags", [])
        cells.append(
            {
                "index": index,
                "label": first[:100],
                "tags": tags,
                "status": meta.get("status"),
                "start_time": meta.get("start_time"),
                "end_time": meta.get("end_time"),
                "duration_s": meta.get("duration"),
                "exception": bool(meta.get("exception")),
            }
        )
    return cells


def _host_facts() -> dict[str, Any]:
    """The harness machine, in the receipts' shape (CPU, RAM, GPU, OS), plus its name."""
    import platform

    from beacon.receipts import host_facts

    return {"hostname": platform.node(), **host_facts()}


def build_summary(
    *,
    run_id: str,
    plan: Plan,
    phase_runs: Sequence[PhaseRun],
    started: float,
    kernel: str,
    runner: Mapping[str, Any],
    served: Mapping[str, Served],
    served_rows: list[dict[str, Any]],
    served_error: str | None,
    live: bool,
    pins: PinnedKeys | None,
    require_all: bool,
) -> dict[str, Any]:
    """The ``summary.json`` document of a finished run: phases, criteria and the verdict.

    ``runner`` describes the runner under test (``exited`` says how it ended during the run, if it
    did: that fails the run like a failed phase).
    """
    documents = {run.spec.id: run.document for run in phase_runs if run.document is not None}
    ran = {run.spec.id for run in phase_runs if run.status != "skipped"}
    criteria = evaluate_criteria(plan, documents, ran, served)
    phases_failed = (
        any(run.status not in ("passed", "skipped") for run in phase_runs) or runner.get("exited") is not None
    )
    status, exit_code = run_verdict(criteria, phases_failed, require_all=require_all)
    finished = time.time()
    return {
        "schema": SUMMARY_SCHEMA,
        "run_id": run_id,
        "beacon_version": __version__,
        "started_at": started,
        "finished_at": finished,
        "duration_s": finished - started,
        "target_duration_s": plan.target_duration_s,
        "inference_target_s": plan.inference_target_s,
        "plan": {
            "name": plan.name,
            "title": plan.title,
            "source": plan.source,
            "path": "inputs/plan.yaml",
            "selected": [run.spec.id for run in phase_runs],
            "all_phases": [p.id for p in plan.phases],
        },
        "runner": dict(runner),
        "kernel": kernel,
        "host": _host_facts(),
        "phases": [run.to_json() for run in phase_runs],
        "criteria": criteria,
        "manual": [item.model_dump() for item in plan.manual],
        "monitor": "monitor.jsonl",
        "served_by": {name: fact.to_json() for name, fact in served.items()},
        "served_regions": served_rows,
        "served_error": served_error,
        "live": live,
        "trust": {
            "mode": "pinned" if pins else "trust_on_first_use",
            "pins": {
                "runner": list(pins.runner),
                "log": list(pins.log),
                "source": pins.source,
            }
            if pins
            else None,
        },
        "require_all": require_all,
        "status": status.split(" ", 1)[0],
        "status_line": status,
        "exit_code": exit_code,
    }


def load_summary(run_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` of a run folder; ValueError if it is unreadable or not a run summary."""
    path = run_dir / "summary.json"
    try:
        summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the run summary ({exc})") from exc
    if summary.get("schema") != SUMMARY_SCHEMA:
        raise ValueError(f"{path}: not a Beacon run summary")
    return summary
