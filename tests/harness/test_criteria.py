"""Phase verdicts and success criteria, judged from phase-results documents."""

from __future__ import annotations

from pathlib import Path

import yaml

from beacon.harness.components import Served
from beacon.harness.criteria import evaluate_criteria, phase_check_status, run_verdict
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


def test_unrun_phases_leave_a_criterion_not_exercised_unless_something_failed(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    verdicts = evaluate_criteria(plan, {"a": doc(("x", "pass"), ("y", "pass"))}, ran={"a"})
    assert verdicts[0]["status"] == "not_exercised"
    assert "b/z" in verdicts[0]["reason"]
    assert verdicts[0]["evidence"][1]["status"] == "not_run"
    assert verdicts[1]["status"] == "pass"
    failing = evaluate_criteria(plan, {"a": doc(("x", "fail"), ("y", "pass"))}, ran={"a"})
    assert failing[0]["status"] == "fail"


def test_a_pass_needs_every_check_exercised(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    one_skip = evaluate_criteria(
        plan, {"a": doc(("x", "pass"), ("y", "not_exercised")), "b": doc(("z", "pass"))}
    )
    assert one_skip[0]["status"] == "pass"
    assert one_skip[1]["status"] == "not_exercised"  # "a/y" could not be exercised: the criterion was not
    assert one_skip[1]["not_exercised"] == ["a/y"]
    legacy = evaluate_criteria(plan, {"a": doc(("x", "pass"), ("y", "skip")), "b": doc(("z", "pass"))})
    assert legacy[1]["status"] == "not_exercised"  # older documents' "skip"


def needing(tmp_path: Path, needs: list[str]):
    plan = plan_with(tmp_path)
    path = plan.path
    assert path is not None
    document = yaml.safe_load(path.read_text())
    document["success_criteria"][0]["needs"] = needs
    path.write_text(yaml.safe_dump(document))
    return load_plan(path)


def test_a_criterion_passes_on_a_substitute_never(tmp_path: Path) -> None:
    plan = needing(tmp_path, ["queue", "content_store"])
    documents = {"a": doc(("x", "pass"), ("y", "pass")), "b": doc(("z", "pass"))}
    substitutes = {
        "queue": Served("queue", "Redis", "inprocess", "/health queue kind"),
        "content_store": Served("content_store", "IPFS", "local", "no IPFS node"),
    }
    verdict = evaluate_criteria(plan, documents, served=substitutes)[0]
    assert verdict["status"] == "not_exercised"
    assert verdict["not_exercised"] == ["Redis", "IPFS"]
    assert "served by inprocess" in verdict["reason"]
    real = {
        "queue": Served("queue", "Redis", "redis", ""),
        "content_store": Served("content_store", "IPFS", "ipfs", ""),
    }
    assert evaluate_criteria(plan, documents, served=real)[0]["status"] == "pass"
    assert evaluate_criteria(plan, documents)[0]["status"] == "not_exercised"  # nothing recorded: not a pass
    failing = {"a": doc(("x", "fail"), ("y", "pass")), "b": doc(("z", "pass"))}
    assert evaluate_criteria(plan, failing, served=substitutes)[0]["status"] == "fail"  # a failure stays one


def test_the_run_verdict_names_what_was_not_exercised() -> None:
    criteria = [
        {"id": "gpu", "status": "not_exercised", "not_exercised": ["GPU"]},
        {"id": "ipfs", "status": "not_exercised", "not_exercised": ["IPFS"]},
        {"id": "golem", "status": "not_exercised", "not_exercised": ["Ollama/Golem"]},
        {"id": "ok", "status": "pass", "not_exercised": []},
    ]
    assert run_verdict(criteria, False) == ("passed — 3 criteria not exercised (GPU, IPFS, Ollama/Golem)", 0)
    line, code = run_verdict(criteria, False, require_all=True)
    assert code == 1 and line.startswith("failed — --require-all")
    line, code = run_verdict([*criteria, {"id": "bad", "status": "fail"}], False)
    assert code == 1 and line.startswith("failed — 1 criteria failed (bad)")
    assert run_verdict([{"id": "ok", "status": "pass"}], True)[1] == 1  # a failed phase fails the run
    assert run_verdict([{"id": "ok", "status": "pass"}], False) == ("passed", 0)


def test_phase_accounting(tmp_path: Path) -> None:
    plan = plan_with(tmp_path)
    phase = plan.phases[0]
    accounting = phase_check_status(phase, doc(("x", "fail"), ("extra", "pass")))
    assert accounting == {
        "missing": ["y"],
        "counts": {"pass": 1, "fail": 1, "not_exercised": 0},
        "failed": ["x"],
        "not_exercised": [],
    }
    assert phase_check_status(phase, None)["missing"] == ["x", "y"]
