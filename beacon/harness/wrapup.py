"""T+60, wrap-up: the run judged from what the earlier phases recorded (notebook ``09-wrap-up``).

Each function records its checks in the phase's results and returns the table it judged. The
wrap-up never says "every check passed" unless every earlier phase reported, and no check of the
run (its own included) failed or went unexercised; an empty results folder fails
``all_phases_reported`` with the folder's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from beacon.harness.criteria import evaluate_criteria, phase_check_status
from beacon.harness.plan import Plan
from beacon.harness.probes import error_log_lines
from beacon.harness.results import PhaseResults, load_phase_results

PHASE = "t+60"
ALL_PASSED = "none: every check passed — schedule the live run"
SUMMARY_MEASURES = ("inference_p95_s", "end_to_end_s", "drain_s")


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


def check_server_errors(
    calls: pd.DataFrame,
    samples: Sequence[Mapping[str, Any]],
    results: PhaseResults,
    *,
    deliberate_codes: Sequence[str] = (),
) -> pd.DataFrame:
    """``no_unexpected_5xx`` (over the phases' calls and the monitor's samples) and ``health_always_200``."""
    if calls.empty:
        server_errors = calls
        deliberate = 0
    else:
        is_5xx = calls["status"].fillna(0) >= 500
        on_purpose = calls["code"].isin(list(deliberate_codes))
        server_errors = calls[is_5xx & ~on_purpose]
        deliberate = int((is_5xx & on_purpose).sum())
    monitor_5xx = [s for s in samples if ((s.get("health") or {}).get("http_status") or 0) >= 500]
    examined = len(calls) + len(samples)
    results.check(
        "no_unexpected_5xx",
        expected=0,
        actual=len(server_errors) + len(monitor_5xx),
        passed=examined > 0 and server_errors.empty and not monitor_5xx,
        detail=f"{len(calls)} calls by the phases ({deliberate} deliberate 5xx: {', '.join(deliberate_codes)}), "
        f"{len(samples)} monitor samples" + ("" if examined else ": nothing to examine"),
        evidence=server_errors[["phase", "method", "route", "status", "code", "request_id"]].to_dict(
            "records"
        )
        if not server_errors.empty
        else None,
    )
    if samples:
        not_ok = [s for s in samples if (s.get("health") or {}).get("http_status") != 200]
        results.check(
            "health_always_200",
            expected=f"{len(samples)} × 200",
            actual=f"{len(samples) - len(not_ok)} × 200",
            passed=not not_ok,
            evidence=not_ok[:5],
        )
    else:
        results.skip("health_always_200", "no run-monitor samples (the notebook ran outside beacon day1)")
    return server_errors


def check_runner_log(
    log_text: str | None, results: PhaseResults, *, deliberate_codes: Sequence[str] = ()
) -> list[str]:
    """``runner_log_clean``: no ERROR line or traceback in the runner's log (skipped when unreadable)."""
    if log_text is None:
        results.skip(
            "runner_log_clean",
            "the runner's log is not readable from here (pass --runner-log for a live runner)",
        )
        return []
    errors = error_log_lines(log_text, ignore_codes=deliberate_codes)
    results.check(
        "runner_log_clean",
        expected="no ERROR lines or tracebacks",
        actual=f"{len(errors)} found in {len(log_text.splitlines())} lines",
        passed=bool(log_text.strip()) and not errors,
        detail=None if log_text.strip() else "the runner's log is empty",
        evidence=[line[:300] for line in errors[:10]],
    )
    results.measure("runner_log_lines", len(log_text.splitlines()))
    return errors


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


def next_steps(
    documents: Mapping[str, Mapping[str, Any]], own: Mapping[str, Any], plan: Plan | None
) -> list[str]:
    """What to do next: fix each failed check, exercise each skipped one, run each absent phase.

    :data:`ALL_PASSED` only when there were results, and nothing failed, was skipped or is absent.
    """
    steps: list[str] = []
    every = {**documents, PHASE: own}
    for phase, doc in every.items():
        for check in doc.get("checks", []):
            if check["status"] == "fail":
                steps.append(f"fix {phase}/{check['id']}")
            elif check["status"] != "pass":
                reason = str(check.get("detail") or "not exercised")
                reason = reason if len(reason) <= 120 else reason[:119] + "…"
                steps.append(f"exercise {phase}/{check['id']} ({reason})")
    if plan is not None:
        steps += [f"run phase {p.id}" for p in plan.phases if p.id != PHASE and p.id not in documents]
    if not documents:
        steps.append("run the earlier phases: this run folder holds none of their results")
    return sorted(set(steps)) or [ALL_PASSED]


def summarise(
    plan: Plan | None, documents: dict[str, dict[str, Any]], results: PhaseResults
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The success criteria, the findings and the next steps (recorded as ``findings_summarised`` and
    ``next_steps``). Returns (criteria, findings, next steps)."""
    criteria = evaluate_criteria(plan, {**documents, PHASE: results.doc}, {*documents, PHASE}) if plan else []
    findings: list[str] = []
    for phase, doc in documents.items():
        findings.extend(f"{phase}: {finding['text']}" for finding in doc.get("findings", []))
        for check in doc.get("checks", []):
            if check["status"] == "fail":
                text = (
                    f"{phase}/{check['id']} failed: expected {str(check.get('expected'))[:80]}, "
                    f"got {str(check.get('actual'))[:80]}"
                )
                findings.append(text + (f" — {check['detail'][:160]}" if check.get("detail") else ""))
    for doc in documents.values():
        for m in doc.get("measurements", []):
            if m["name"] in SUMMARY_MEASURES and m.get("value") is not None:
                tags = ", ".join(f"{k}={v}" for k, v in (m.get("tags") or {}).items())
                findings.append(f"{m['name']} {m['value']:.3f}{m['unit']}" + (f" ({tags})" if tags else ""))
    for text in findings:
        results.finding(text, severity="warning" if " failed:" in text else "info")
    results.check(
        "findings_summarised",
        expected="findings recorded from the earlier phases' data",
        actual=f"{len(findings)} findings from {len(documents)} phases",
        passed=bool(documents),
        detail=None if documents else "no earlier phase results to summarise",
    )
    steps = next_steps(documents, results.doc, plan)
    results.table("next_steps", [{"step": s} for s in steps])
    results.check(
        "next_steps",
        expected="derived from the failed, skipped and absent checks and phases",
        actual=steps,
        passed=bool(documents),
        detail=None if documents else "nothing to derive them from",
    )
    return criteria, findings, steps
