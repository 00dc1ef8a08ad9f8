"""T+60's checks (beacon.harness.wrapup) on results that make them fail, not only on the passing path."""

from __future__ import annotations

from pathlib import Path

from beacon.harness import wrapup
from beacon.harness.results import PhaseResults


def earlier(tmp_path: Path, phase: str, *, status: str = "pass", calls: list[dict] | None = None) -> None:
    results = PhaseResults(tmp_path / "results" / f"{phase}.json", phase=phase)
    if status == "skip":
        results.skip("gpu", "no GPU here")
    else:
        results.check("thing", expected=1, actual=1 if status == "pass" else 2)
    results.doc["calls"] = calls or []
    results.finish()


def call(status: int, duration: float = 0.01, code: str | None = None) -> dict:
    return {"method": "GET", "route": "/health", "status": status, "duration_s": duration, "code": code}


def test_an_empty_results_folder_fails_and_never_says_every_check_passed(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    results = PhaseResults(None, phase="t+60")
    documents = wrapup.load_documents(tmp_path / "results")
    assert documents == {}
    wrapup.check_phases_reported(None, documents, results, results_dir=tmp_path / "results")
    calls = wrapup.collect_calls(documents)
    wrapup.check_server_errors(calls, [], results)
    wrapup.check_api_latency(calls, results, p95_budget_s=1.0)
    _, _, steps = wrapup.summarise(None, documents, results)
    statuses = {c["id"]: c["status"] for c in results.checks}
    assert statuses["all_phases_reported"] == "fail"
    assert "no earlier phase results in" in results.get_check("all_phases_reported")["detail"]
    assert statuses["no_unexpected_5xx"] == "fail"  # nothing examined is not "no 5xx"
    assert statuses["api_latency_within_budget"] == "fail"
    assert statuses["findings_summarised"] == "fail" and statuses["next_steps"] == "fail"
    assert wrapup.ALL_PASSED not in steps
    assert any("run the earlier phases" in s for s in steps)


def test_failed_and_skipped_checks_become_next_steps_and_5xx_fail(tmp_path: Path) -> None:
    earlier(tmp_path, "t-60", status="skip", calls=[call(200)])
    earlier(tmp_path, "t-15", status="fail", calls=[call(500), call(503, code="submissions_paused")])
    results = PhaseResults(None, phase="t+60")
    documents = wrapup.load_documents(tmp_path / "results")
    calls = wrapup.collect_calls(documents)
    errors = wrapup.check_server_errors(calls, [], results, deliberate_codes=["submissions_paused"])
    assert len(errors) == 1 and results.get_check("no_unexpected_5xx")["status"] == "fail"
    wrapup.check_runner_log('{"level": "ERROR", "message": "boom"}\n', results)
    assert results.get_check("runner_log_clean")["status"] == "fail"
    _, findings, steps = wrapup.summarise(None, documents, results)
    assert "fix t-15/thing" in steps and "fix t+60/no_unexpected_5xx" in steps
    assert any(s.startswith("exercise t-60/gpu") for s in steps)
    assert wrapup.ALL_PASSED not in steps
    assert any("t-15/thing failed" in f for f in findings)


def test_every_check_passed_only_when_it_did(tmp_path: Path) -> None:
    earlier(tmp_path, "t-60", calls=[call(200)])
    results = PhaseResults(None, phase="t+60")
    documents = wrapup.load_documents(tmp_path / "results")
    calls = wrapup.collect_calls(documents)
    wrapup.check_phases_reported(None, documents, results, results_dir=tmp_path / "results")
    wrapup.check_server_errors(calls, [{"health": {"http_status": 200}}], results)
    wrapup.check_runner_log("INFO all fine\n", results)
    wrapup.check_api_latency(calls, results, p95_budget_s=1.0)
    _, _, steps = wrapup.summarise(None, documents, results)
    assert all(c["status"] == "pass" for c in results.checks), results.checks
    assert steps == [wrapup.ALL_PASSED]
    slow = PhaseResults(None, phase="t+60")
    wrapup.check_api_latency(wrapup.collect_calls({"x": {"calls": [call(200, 3.0)]}}), slow, p95_budget_s=1.0)
    assert slow.get_check("api_latency_within_budget")["status"] == "fail"
