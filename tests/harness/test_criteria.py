"""Phase verdicts and success criteria, judged from phase-results documents."""

from __future__ import annotations

from pathlib import Path

import yaml

from beacon.harness.criteria import evaluate_criteria, phase_check_status
from beacon.harness.plan import load_plan


def plan_with(tmp_path: Path):
    (tmp_path / "test_plans").mkdir()
    path = tmp_path / "test_plans" / "p.yaml"
    phase = {"title": "P", "section": "S", "notebook": "n.ipynb", "timeout_s": 5}
    path.write_text(
        yaml.safe_dump(
            {
                "schema": "beacon.test-plan/v1",
                "name": "p",
                "title": "P",
                "phases": [
                    {**phase, "id": "a", "checks": [{"id": "x", "title": "x"}, {"id": "y", "title": "y"}]},
                    {**phase, "id": "b", "checks": [{"id": "z", "title": "z"}]},
                ],
                "success_criteria": [
                    {"id": "both", "title": "both", "evidence": ["a/x", "b/z"]},
                    {"id": "only-a", "title": "only a", "evidence": ["a/x", "a/y"]},
                ],
            }
        )
    )
    return load_plan(path)


def doc(*checks: tuple[str, str]) -> dict:
    return {"checks": [{"id": i, "status": s, "expected": 1, "actual": 1, "detail": None} for i, s in checks]}


def test_all_passing_evidence_passes(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    verdicts = evaluate_criteria(plan, {"a": doc(("x", "pass"), ("y", "pass")), "b": doc(("z", "pass"))})
    assert [v["status"] for v in verdicts] == ["pass", "pass"]


def test_a_failed_or_missing_check_fails_the_criterion(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    verdicts = evaluate_criteria(plan, {"a": doc(("x", "pass")), "b": doc(("z", "fail"))})
    assert verdicts[0]["status"] == "fail"
    assert verdicts[1]["status"] == "fail"  # a/y is missing
    assert verdicts[1]["evidence"][1]["status"] == "missing"


def test_unrun_phases_leave_a_criterion_not_evaluated_unless_something_failed(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    verdicts = evaluate_criteria(plan, {"a": doc(("x", "pass"), ("y", "pass"))}, ran={"a"})
    assert verdicts[0]["status"] == "not_evaluated"
    assert verdicts[0]["evidence"][1]["status"] == "not_run"
    assert verdicts[1]["status"] == "pass"
    failing = evaluate_criteria(plan, {"a": doc(("x", "fail"), ("y", "pass"))}, ran={"a"})
    assert failing[0]["status"] == "fail"


def test_skips_count_neither_way_but_a_criterion_needs_one_pass(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    one_skip = evaluate_criteria(plan, {"a": doc(("x", "pass"), ("y", "skip")), "b": doc(("z", "pass"))})
    assert one_skip[1]["status"] == "pass"
    all_skipped = evaluate_criteria(plan, {"a": doc(("x", "skip"), ("y", "skip")), "b": doc(("z", "skip"))})
    assert all_skipped[1]["status"] == "not_evaluated"


def test_phase_accounting(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    phase = plan.phases[0]
    accounting = phase_check_status(phase, doc(("x", "fail"), ("extra", "pass")))
    assert accounting == {"missing": ["y"], "counts": {"pass": 1, "fail": 1, "skip": 0}, "failed": ["x"]}
    assert phase_check_status(phase, None)["missing"] == ["x", "y"]
