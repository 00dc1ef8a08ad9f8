"""Judging phases and success criteria from phase results (data, not printed text).

Three verdicts, for checks and criteria alike: **pass**, **fail**, **not exercised** (with the
reason). A phase *passed* when its notebook ran to the end, produced every check the plan declares
for it and none of its checks failed. A success criterion:

* *fails* when a check it names failed or is missing from a phase that ran;
* *passes* only when every check it names passed **and** every component it ``needs`` was the real
  one (PostgreSQL, Redis, IPFS, a GPU, Ollama/Golem — see :mod:`beacon.harness.components`);
* is otherwise *not exercised*, and says why: a check not exercised ("no GPU on this host"), a
  phase not run, or a substitute serving (SQLite, the in-process queue, the local content store,
  the CPU, llama.cpp).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from beacon.harness.components import COMPONENTS, Served
from beacon.harness.plan import PhaseSpec, Plan
from beacon.harness.results import NOT_EXERCISED, count_verdicts, verdict_of

CriterionStatus = Literal["pass", "fail", "not_exercised"]


def phase_check_status(phase: PhaseSpec, document: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-phase check accounting: declared checks missing from the results, and counts."""
    checks = list((document or {}).get("checks", []))
    produced = {check["id"] for check in checks}
    missing = [check.id for check in phase.checks if check.id not in produced]
    return {
        "missing": missing,
        "counts": count_verdicts(checks),
        "failed": [c["id"] for c in checks if verdict_of(c) == "fail"],
        "not_exercised": [c["id"] for c in checks if verdict_of(c) == NOT_EXERCISED],
    }


def evaluate_criteria(
    plan: Plan,
    documents: Mapping[str, Mapping[str, Any]],
    ran: set[str] | None = None,
    served: Mapping[str, Served] | None = None,
) -> list[dict[str, Any]]:
    """Every success criterion of ``plan`` judged from the phase-results ``documents`` (by phase id).

    ``ran`` is the set of phases that were executed (default: those with a document); ``served``
    says what served each component (None: not recorded, so a criterion that needs a real
    component is not exercised).
    """
    executed = set(documents) if ran is None else ran
    out: list[dict[str, Any]] = []
    for criterion in plan.success_criteria:
        evidence: list[dict[str, Any]] = []
        for ref in criterion.evidence:
            phase_id, check_id = ref.split("/")
            spec = plan.phase(phase_id)
            declared = spec.check(check_id) if spec else None
            title = declared.title if declared else None
            row: dict[str, Any] = {"ref": ref, "phase": phase_id, "check": check_id, "title": title}
            if phase_id not in executed:
                row.update(status="not_run", detail="the phase was not run")
            else:
                found = next(
                    (c for c in (documents.get(phase_id) or {}).get("checks", []) if c["id"] == check_id),
                    None,
                )
                if found is None:
                    row.update(status="missing", detail="the phase did not produce this check")
                else:
                    row.update(
                        status=verdict_of(found),
                        expected=found.get("expected"),
                        actual=found.get("actual"),
                        detail=found.get("detail"),
                        served_by=found.get("served_by"),
                    )
            evidence.append(row)
        components = []
        for name in criterion.needs:
            fact = (served or {}).get(name)
            if fact is None:
                label = COMPONENTS[name].label
                fact = Served(name, label, None, "not recorded for this run")
            components.append(fact)
        statuses = [row["status"] for row in evidence]
        reasons: list[str] = []
        status: CriterionStatus
        if any(s in ("fail", "missing") for s in statuses):
            status = "fail"
            reasons = [
                f"{row['ref']} {row['status']}" for row in evidence if row["status"] in ("fail", "missing")
            ]
        else:
            reasons = [
                f"{row['ref']}: {row.get('detail') or row['status']}"
                for row in evidence
                if row["status"] != "pass"
            ]
            reasons += [fact.reason for fact in components if not fact.exercised]
            status = "not_exercised" if reasons else "pass"
        out.append(
            {
                "id": criterion.id,
                "title": criterion.title,
                "status": status,
                "reason": "; ".join(reasons) or None,
                "not_exercised": _labels(status, components, evidence),
                "needs": [fact.to_json() for fact in components],
                "note": criterion.note,
                "evidence": evidence,
            }
        )
    return out


def _labels(status: str, components: list[Served], evidence: list[dict[str, Any]]) -> list[str]:
    """What a criterion not exercised lacked: the components it needs, else the checks it names."""
    if status != "not_exercised":
        return []
    labels = [fact.label for fact in components if not fact.exercised]
    return labels or [row["ref"] for row in evidence if row["status"] != "pass"]


def run_verdict(
    criteria: list[dict[str, Any]], phases_failed: bool, *, require_all: bool = False
) -> tuple[str, int]:
    """The run's status line and exit status.

    ``passed — 3 criteria not exercised (GPU, IPFS, Golem)``; exit 0 only when nothing failed
    (``require_all``: a criterion not exercised fails the run too).
    """
    failed = [c for c in criteria if c["status"] == "fail"]
    skipped = [c for c in criteria if c["status"] == "not_exercised"]
    what: list[str] = []
    for criterion in skipped:
        for label in criterion.get("not_exercised") or [criterion["id"]]:
            if label not in what:
                what.append(label)
    tail = f" — {len(skipped)} criteria not exercised ({', '.join(what)})" if skipped else ""
    if failed or phases_failed:
        parts = []
        if failed:
            parts.append(f"{len(failed)} criteria failed ({', '.join(c['id'] for c in failed)})")
        if phases_failed:
            parts.append("a phase failed")
        return "failed — " + "; ".join(parts) + (tail.replace(" — ", "; ") if tail else ""), 1
    if skipped and require_all:
        return "failed — --require-all" + tail, 1
    return "passed" + tail, 0
