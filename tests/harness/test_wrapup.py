"""T+60's checks (beacon.harness.wrapup, judging with beacon.harness.checks) on results that make them fail,
not only on the passing path."""

from __future__ import annotations

from pathlib import Path

from beacon.harness import checks, wrapup
from beacon.harness.results import PhaseResults


def earlier(
    tmp_path: Path,
    phase: str,
    *,
    status: str = "pass",
    calls: list[dict] | None = None,
    deliberate: list[dict] | None = None,
) -> None:
    results = PhaseResults(tmp_path / "results" / f"{phase}.json", phase=phase)
    if status == "skip":
        results.skip("gpu", "no GPU here")
    else:
        results.check("thing", expected=1, actual=1 if status == "pass" else 2)
    results.doc["calls"] = calls or []
    results.doc["deliberate"] = deliberate or []
    results.finish()


def call(status: int, duration: float = 0.01, code: str | None = None, request_id: str | None = None) -> dict:
    return {
        "method": "GET",
        "route": "/health",
        "status": status,
        "duration_s": duration,
        "code": code,
        "request_id": request_id,
    }


def test_an_empty_results_folder_fails_and_never_says_every_check_passed(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    results = PhaseResults(None, phase="t+60")
    documents = wrapup.load_documents(tmp_path / "results")
    assert documents == {}
    wrapup.check_phases_reported(None, documents, results, results_dir=tmp_path / "results")
    calls = wrapup.collect_calls(documents)
    checks.judge_no_unexpected_5xx(results, documents, [])
    wrapup.check_health_samples([], results)
    wrapup.check_api_latency(calls, results, p95_budget_s=1.0)
    _, _, steps = wrapup.summarise(None, documents, results)
    statuses = {c["id"]: c["status"] for c in results.checks}
    assert statuses["all_phases_reported"] == "fail"
    assert "no earlier phase results in" in results.get_check("all_phases_reported")["detail"]
    # nothing examined is not "no 5xx", nor findings or next steps: not exercised, never a pass
    assert statuses["no_unexpected_5xx"] == "not_exercised"
    assert statuses["health_always_200"] == "not_exercised"
    assert statuses["api_latency_within_budget"] == "fail"
    assert statuses["findings_summarised"] == "not_exercised"
    assert statuses["next_steps"] == "not_exercised"
    assert checks.ALL_PASSED not in steps
    assert any("run the earlier phases" in s for s in steps)


def test_failed_and_skipped_checks_become_next_steps_and_5xx_fail(tmp_path: Path) -> None:
    earlier(tmp_path, "t-60", status="skip", calls=[call(200)])
    earlier(
        tmp_path,
        "t-15",
        status="fail",
        calls=[call(500, request_id="r1"), call(503, code="submissions_paused", request_id="r2")],
        deliberate=[{"request_id": "r2", "reason": "paused on purpose"}],
    )
    results = PhaseResults(None, phase="t+60")
    documents = wrapup.load_documents(tmp_path / "results")
    # the deliberate 503 is excepted by its request id; the other 5xx fails the check
    assert not checks.judge_no_unexpected_5xx(results, documents, [])
    assert results.get_check("no_unexpected_5xx")["actual"] == 1
    unhealthy = PhaseResults(None, phase="t+60")
    assert len(wrapup.check_health_samples([{"health": {"http_status": 503}}], unhealthy)) == 1
    assert unhealthy.get_check("health_always_200")["status"] == "fail"
    log = '{"level": "ERROR", "message": "paused", "request_id": "r2"}\n'
    assert checks.judge_runner_log_clean(results, log, documents)
    assert not checks.judge_runner_log_clean(
        results, log + '{"level": "ERROR", "message": "boom"}\n', documents
    )
    assert results.get_check("runner_log_clean")["status"] == "fail"
    _, findings, steps = wrapup.summarise(None, documents, results)
    assert "fix t-15/thing" in steps and "fix t+60/no_unexpected_5xx" in steps
    assert "fix t+60/runner_log_clean" in steps
    assert any(s.startswith("exercise t-60/gpu") for s in steps)
    assert checks.ALL_PASSED not in steps
    assert any("t-15/thing failed" in f["text"] for f in findings)


def test_every_check_passed_only_when_it_did(tmp_path: Path) -> None:
    earlier(tmp_path, "t-60", calls=[call(200)])
    results = PhaseResults(None, phase="t+60")
    documents = wrapup.load_documents(tmp_path / "results")
    calls = wrapup.collect_calls(documents)
    wrapup.check_phases_reported(None, documents, results, results_dir=tmp_path / "results")
    checks.judge_no_unexpected_5xx(results, documents, [{"health": {"http_status": 200}}])
    wrapup.check_health_samples([{"health": {"http_status": 200}}], results)
    checks.judge_runner_log_clean(results, "INFO all fine\n", documents)
    wrapup.check_api_latency(calls, results, p95_budget_s=1.0)
    _, _, steps = wrapup.summarise(None, documents, results)
    assert all(c["status"] == "pass" for c in results.checks), results.checks
    assert steps == [checks.ALL_PASSED]
    slow = PhaseResults(None, phase="t+60")
    wrapup.check_api_latency(wrapup.collect_calls({"x": {"calls": [call(200, 3.0)]}}), slow, p95_budget_s=1.0)
    assert slow.get_check("api_latency_within_budget")["status"] == "fail"
