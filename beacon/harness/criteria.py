"""Judging phases and success criteria from phase results (data, not printed text).

A phase *passed* when its notebook ran to the end, produced every check the plan declares for it
and none of its checks failed. A success criterion *passes* when every check it names passed
(skipped checks — "no GPU on this host" — are shown with their reason and do not count either
way, but a criterion needs at least one check that actually passed). A criterion whose evidence
comes from phases that were not run is *not evaluated*, unless something it names already failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from beacon.harness.plan import PhaseSpec, Plan

CriterionStatus = Literal["pass", "fail", "not_evaluated"]


def phase_check_status(phase: PhaseSpec, document: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-phase check accounting: declared checks missing from the results, and counts."""
    checks = list((document or {}).get("checks", []))
    produced = {check["id"] for check in checks}
    missing = [check.id for check in phase.checks if check.id not in produced]
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for check in checks:
        counts[check["status"]] = counts.get(check["status"], 0) + 1
    return {
        "missing": missing,
        "counts": counts,
        "failed": [c["id"] for c in checks if c["status"] == "fail"],
    }


def evaluate_criteria(
    plan: Plan, documents: Mapping[str, Mapping[str, Any]], ran: set[str] | None = None
) -> list[dict[str, Any]]:
    """Every success criterion of ``plan`` judged from the phase-results ``documents`` (by phase id).

    ``ran`` is the set of phases that were executed (default: those with a document).
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
                        status=found["status"],
                        expected=found.get("expected"),
                        actual=found.get("actual"),
                        detail=found.get("detail"),
                    )
            evidence.append(row)
        statuses = [row["status"] for row in evidence]
        status: CriterionStatus
        if any(s in ("fail", "missing") for s in statuses):
            status = "fail"
        elif any(s == "not_run" for s in statuses) or not any(s == "pass" for s in statuses):
            status = "not_evaluated"
        else:
            status = "pass"
        out.append(
            {
                "id": criterion.id,
                "title": criterion.title,
                "status": status,
                "note": criterion.note,
                "evidence": evidence,
            }
        )
    return out
