"""T+60, wrap-up: the run judged from what the earlier phases recorded (notebook ``09-wrap-up``).

Each function records its checks in the phase's results and returns the table it judged; the
judgements shared with the fault matrix (5xx and the runner's log by request id, findings, next
steps) are those of :mod:`beacon.harness.checks`, and the success criteria are judged with what
served each component. The wrap-up never says "every check passed" unless every earlier phase
reported, and no check of the run (its own included) failed or went unexercised; an empty results
folder fails ``all_phases_reported`` with the folder's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd

from beacon.harness import checks
from beacon.harness.components import Served
from beacon.harness.criteria import evaluate_criteria, phase_check_status
from beacon.harness.plan import Plan
from beacon.harness.results import PhaseResults, Severity, load_phase_results

PHASE = "t+60"


def load_documents(results_dir: Path | None, *, exclude: str = PHASE) -> dict[str, dict[str, Any]]:
    """The earlier phases' results in ``results_dir``, by phase id."""
    documents: dict[str, dict[str, Any]] = {}
    if results_dir is None or not results_dir.is_dir():
        return documents
    for path in sorted(results_dir.glob("*.json")):
        try:
            document = load_phase_results(path)
        except ValueError:
            continue
        if document["phase"] != exclude:
            documents[str(document["phase"])] = document
    return documents


def check_phases_reported(
    plan: Plan | None, documents: Mapping[str, Mapping[str, Any]], results: PhaseResults, *, results_dir: Any
) -> pd.DataFrame:
    """``all_phases_reported``: every earlier phase of the plan (or every one found) completed its results."""
    earlier = [p.id for p in plan.phases if p.id != PHASE] if plan else sorted(documents)
    rows = []
    for phase_id in earlier:
        document = documents.get(phase_id)
        spec = plan.phase(phase_id) if plan else None
        accounting = (
            phase_check_status(spec, document) if spec else {"counts": {}, "missing": [], "failed": []}
        )
        rows.append(
            {
                "phase": phase_id,
                "status": document["status"] if document else "absent",
                **accounting["counts"],
                "failed": ", ".join(accounting["failed"]),
                "missing": ", ".join(accounting["missing"]),
            }
        )
    results.table("phases", rows)
    incomplete = [r["phase"] for r in rows if r["status"] != "completed"]
    if not rows:
        detail = f"no earlier phase results in {results_dir}: run the earlier phases first (or beacon day1)"
    elif incomplete:
        detail = "phases run one at a time (--phases) leave the others absent"
    else:
        detail = None
    results.check(
        "all_phases_reported",
        expected="every earlier phase completed its results",
        actual=incomplete or f"all {len(rows)}",
        passed=bool(rows) and not incomplete,
        detail=detail,
    )
    return pd.DataFrame(rows)


def collect_calls(documents: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Every HTTP call the earlier phases recorded, with a ``phase`` column."""
    columns = ["phase", "method", "route", "status", "duration_s", "code", "request_id"]
    rows = [{"phase": phase, **call} for phase, doc in documents.items() for call in doc.get("calls", [])]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=list(dict.fromkeys([*columns, *frame.columns])))


def check_health_samples(
    samples: Sequence[Mapping[str, Any]], results: PhaseResults
) -> list[Mapping[str, Any]]:
    """``health_always_200``: every run-monitor sample of ``/health`` was a 200 (not exercised without
    samples). Returns the samples that were not."""
    if not samples:
        results.not_exercised(
            "health_always_200", "no run-monitor samples (the notebook ran outside beacon day1)"
        )
        return []
    not_ok = [s for s in samples if (s.get("health") or {}).get("http_status") != 200]
    results.check(
        "health_always_200",
        expected=f"{len(samples)} × 200",
        actual=f"{len(samples) - len(not_ok)} × 200",
        passed=not not_ok,
        evidence=not_ok[:5],
        examined=len(samples),
    )
    return not_ok


def check_api_latency(calls: pd.DataFrame, results: PhaseResults, *, p95_budget_s: float) -> pd.DataFrame:
    """``api_latency_within_budget``: client-side p95 of every GET route within the budget."""
    timed = calls.dropna(subset=["duration_s"]) if not calls.empty else calls
    if timed.empty:
        results.fail("api_latency_within_budget", "no calls were recorded by the earlier phases")
        return pd.DataFrame()
    latency = timed.groupby(["method", "route"])["duration_s"].describe(percentiles=[0.5, 0.95]).reset_index()
    results.table("api_latency", latency.rename(columns={"50%": "p50_s", "95%": "p95_s"}))
    reads = latency[latency["method"] == "GET"]
    slow = reads[reads["95%"] > p95_budget_s]
    results.check(
        "api_latency_within_budget",
        expected=f"p95 ≤ {p95_budget_s}s for every GET route",
        actual={f"{r['method']} {r['route']}": round(r["95%"], 3) for _, r in slow.iterrows()}
        or f"all {len(reads)} GET routes within budget",
        passed=not reads.empty and slow.empty,
        detail=None if not reads.empty else "no GET call to judge",
    )
    return latency.sort_values("count", ascending=False)


def summarise(
    plan: Plan | None,
    documents: dict[str, dict[str, Any]],
    results: PhaseResults,
    served: Mapping[str, Served] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
    """The success criteria (judged with what ``served`` each component), the findings and the next
    steps (recorded as ``findings_summarised`` and ``next_steps``). Returns (criteria, findings, steps)."""
    criteria = (
        evaluate_criteria(plan, {**documents, PHASE: results.doc}, {*documents, PHASE}, served)
        if plan
        else []
    )
    findings = checks.summarise_findings(documents, PHASE)
    for finding in findings:
        results.finding(finding["text"], severity=cast(Severity, finding["severity"]))
    checks.judge_findings(results, documents, findings, PHASE)
    steps = checks.next_steps(
        documents, criteria, PHASE, own=results.doc, phases=[p.id for p in plan.phases] if plan else ()
    )
    results.table("next_steps", [{"step": s} for s in steps])
    checks.judge_next_steps(results, documents, criteria, steps, PHASE)
    return criteria, findings, steps
