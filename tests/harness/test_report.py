"""Reports: rendered from summary.json alone, self-contained, with every figure; runs compared."""

from __future__ import annotations

import json
import re
from pathlib import Path

from beacon.harness.report import render_report

T0 = 1_800_000_000.0


def phase(
    phase_id: str, status: str, start: float, checks: list[tuple[str, str]], tables: dict | None = None
) -> dict:
    return {
        "id": phase_id,
        "title": phase_id.upper(),
        "section": "Section",
        "status": status,
        "error": None if status != "error" else {"kind": "timeout", "message": "killed"},
        "started_at": start,
        "finished_at": start + 3,
        "duration_s": 3.0,
        "timeout_s": 60,
        "notebook": f"notebooks/{phase_id}.ipynb",
        "executed": f"notebooks/{phase_id}.ipynb",
        "html": f"notebooks/{phase_id}.html",
        "results_path": f"results/{phase_id}.json",
        "log": f"logs/{phase_id}.log",
        "parameters": {"live": False},
        "declared_checks": [{"id": c, "title": c, "plan": ["the plan says <b>so</b>"]} for c, _ in checks],
        "accounting": {"counts": {"pass": 1, "fail": 0, "skip": 0}, "missing": [], "failed": []},
        "cells": [
            {
                "index": 2,
                "label": "session = open_session(…)",
                "tags": [],
                "status": "completed",
                "duration_s": 1.5,
                "exception": False,
            },
            {
                "index": 3,
                "label": "results.check(…)",
                "tags": [],
                "status": "completed",
                "duration_s": 0.2,
                "exception": False,
            },
        ],
        "results": {
            "checks": [
                {"id": c, "status": s, "expected": 1, "actual": 1 if s == "pass" else 2, "detail": None}
                for c, s in checks
            ],
            "tables": tables or {},
            "calls": [
                {
                    "method": "GET",
                    "route": "/health",
                    "status": 200,
                    "duration_s": 0.01,
                    "started_at": start,
                    "code": None,
                    "client": "anonymous",
                    "request_id": "r1",
                    "url": "http://x/health",
                },
                {
                    "method": "POST",
                    "route": "/api/v1/jobs",
                    "status": 400,
                    "duration_s": 0.02,
                    "started_at": start,
                    "code": "signature_missing",
                    "client": "anonymous",
                    "request_id": "r2",
                    "url": "http://x/api/v1/jobs",
                },
            ],
            "findings": [{"severity": "info", "text": "<script>alert(1)</script> escaped"}],
            "measurements": [],
        },
    }


def make_run(tmp_path: Path, name: str, status: str = "pass") -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    executions = [
        {
            "job_id": "j1",
            "region": region,
            "model": "smollm2-135m",
            "question_id": "q",
            "status": "completed",
            "latency_s": 0.3 + 0.1 * i,
            "queue_s": 0.01,
            "tokens_out": 20,
            "backend": "llamacpp",
        }
        for i, region in enumerate(["US", "EU", "ASIA"] * 2)
    ]
    timeline = [
        {"job_id": "j1", "state": s, "at": T0 + 10 + i}
        for i, s in enumerate(["created", "enqueued", "executing", "completed"])
    ]
    receipts = [
        {
            "receipt_id": "rc1",
            "execution_id": "e1",
            "region": "US",
            "model": "m",
            "signature_verified": True,
            "leaf_index": 0,
            "proof_verified": True,
            "cid": "bafk",
        }
    ]
    summary = {
        "schema": "beacon.run-summary/v1",
        "run_id": name,
        "beacon_version": "0.1.0",
        "started_at": T0,
        "finished_at": T0 + 20,
        "duration_s": 20.0 if status == "pass" else 25.0,
        "target_duration_s": 180,
        "inference_target_s": 2.0,
        "plan": {
            "name": "day1",
            "title": "Day-1 plan",
            "source": "the plan",
            "path": "inputs/plan.yaml",
            "selected": ["t-0", "t+45"],
            "all_phases": ["t-0", "t+45"],
        },
        "runner": {"url": "http://127.0.0.1:1", "embedded": True, "log": "logs/runner.log"},
        "kernel": "beacon",
        "host": {"hostname": "h", "platform": "linux", "python": "3.11", "cpu_count": 2, "memory_gib": 8},
        "phases": [
            phase(
                "t-0",
                "passed",
                T0 + 1,
                [("job_completed", "pass")],
                {"executions": executions, "job_timeline": timeline},
            ),
            phase(
                "t+45",
                "passed" if status == "pass" else "failed",
                T0 + 5,
                [("receipts_retrievable", status)],
                {"receipts": receipts, "checkpoints": [{"size": 1, "root": "ab", "verified_by": "log"}]},
            ),
        ],
        "criteria": [
            {
                "id": "c",
                "title": "Receipts retrievable via API with valid data",
                "status": status,
                "note": "",
                "evidence": [
                    {
                        "ref": "t+45/receipts_retrievable",
                        "status": status,
                        "title": "t",
                        "expected": 1,
                        "actual": 1,
                    }
                ],
            }
        ],
        "manual": [
            {
                "item": "Open the portal",
                "section": "Portal",
                "reason": "needs a browser",
                "covered_by": ["cors/preflight_allowed"],
            }
        ],
        "monitor": "monitor.jsonl",
        "status": "passed" if status == "pass" else "failed",
        "exit_code": 0 if status == "pass" else 1,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with (run_dir / "monitor.jsonl").open("w") as handle:
        for i in range(5):
            handle.write(
                json.dumps(
                    {
                        "time": T0 + i,
                        "health": {"http_status": 200, "status": "healthy", "duration_s": 0.01},
                        "queues": {"US": i % 2, "EU": 0},
                        "host": {"time": T0 + i, "cpu_percent": 10.0 * i, "memory_percent": 20.0},
                    }
                )
                + "\n"
            )
        handle.write('{"time": torn')  # a torn last line is ignored
    return run_dir


def test_report_is_self_contained_with_every_figure(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "a")
    index = render_report(run_dir)
    html = index.read_text()
    assert "Receipts retrievable via API with valid data" in html
    assert html.count("data:image/png;base64,") >= 6
    for name in ("phases", "cells", "latency", "lifecycle", "queue_depth", "host", "api"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000, name
    assert not re.search(r"<(script|link)\b", html), "nothing is loaded from elsewhere"
    assert not re.search(r'src="(?!data:)', html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # findings are escaped
    assert "rc1" in html and "needs a browser" in html
    assert "5 health samples by the run monitor, 0 not 200" in html
