"""PhaseResults: one JSON document per phase, written as it goes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from beacon.client import CallLog, CallRecord
from beacon.harness.results import PhaseResults, load_phase_results, to_jsonable


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_checks_are_written_immediately_and_replace_by_id(tmp_path: Path) -> None:
    path = tmp_path / "results" / "p.json"
    results = PhaseResults(path, phase="p")
    assert read(path)["status"] == "running"
    assert results.check("a", expected=200, actual=200) is True
    assert results.check("b", expected=[1, 2], actual=(1, 2)) is True  # compared as JSON
    assert results.check("c", expected="< 2s", actual=2.5, passed=False) is False
    results.check("a", expected=200, actual=500)  # re-run of a cell replaces
    document = read(path)
    assert [c["id"] for c in document["checks"]] == ["a", "b", "c"]
    assert document["checks"][0]["status"] == "fail"
    assert not results.passed


def test_skip_fail_and_attempt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = PhaseResults(tmp_path / "p.json", phase="p")
    results.skip("gpu", "no GPU on this host")
    with results.attempt("endpoint"):
        raise KeyError("missing")
    with results.attempt("fine"):
        results.check("fine", expected=1, actual=1)
    checks = {c["id"]: c for c in read(tmp_path / "p.json")["checks"]}
    assert checks["gpu"]["status"] == "not_exercised" and checks["gpu"]["detail"] == "no GPU on this host"
    assert checks["endpoint"]["status"] == "fail" and "KeyError" in checks["endpoint"]["detail"]
    assert checks["fine"]["status"] == "pass"
    assert "KeyError" in capsys.readouterr().err  # the traceback lands in the cell's output


def test_a_pass_on_nothing_or_on_a_substitute_is_not_exercised(tmp_path: Path) -> None:
    results = PhaseResults(tmp_path / "p.json", phase="p")
    assert results.check("empty", expected="a list", actual=[], passed=True, examined=0)
    results.check("some", expected="a list", actual=[1], passed=True, examined=1)
    results.check("sqlite", expected="up", actual="up", served_by="sqlite", real="postgresql")
    results.check("postgres", expected="up", actual="up", served_by="postgresql", real="postgresql")
    assert not results.check(
        "broken_sqlite", expected="up", actual="down", served_by="sqlite", real="postgresql"
    )
    assert not results.check("broken_empty", expected=1, actual=2, examined=0)
    checks = {c["id"]: c for c in read(tmp_path / "p.json")["checks"]}
    assert checks["empty"]["status"] == "not_exercised" and "0 items" in checks["empty"]["detail"]
    assert checks["some"]["status"] == "pass"
    assert checks["sqlite"]["status"] == "not_exercised"
    assert "served by sqlite, a substitute for postgresql" in checks["sqlite"]["detail"]
    assert checks["postgres"]["status"] == "pass"
    assert checks["broken_sqlite"]["status"] == "fail"  # a failure is a failure whatever served it
    assert checks["broken_empty"]["status"] == "fail"
    assert results.summary()["checks"] == {"pass": 2, "fail": 2, "not_exercised": 2}


def test_deliberate_requests_are_recorded(tmp_path: Path) -> None:
    results = PhaseResults(tmp_path / "p.json", phase="p")
    results.deliberate("req-1", "unsigned submission")
    results.deliberate(None, "no id: nothing to record")
    assert read(tmp_path / "p.json")["deliberate"] == [
        {"request_id": "req-1", "reason": "unsigned submission"}
    ]


def test_older_documents_skip_reads_as_not_exercised(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    results = PhaseResults(path, phase="p")
    results.doc["checks"].append({"id": "gpu", "status": "skip", "detail": "no GPU"})
    results.flush()
    assert load_phase_results(path)["checks"][0]["status"] == "not_exercised"


def test_measurements_tables_artefacts_findings_and_finish(tmp_path: Path) -> None:
    path = tmp_path / "results" / "p.json"
    results = PhaseResults(path, phase="p", title="P")
    results.measure("latency_s", np.float64(0.25), unit="s", region="EU")
    results.table("rows", pd.DataFrame([{"a": np.int64(1), "b": "x"}]))
    results.append_row("series", {"t": 1.0, "v": float("nan")})
    artefact = tmp_path / "artefacts" / "x.txt"
    artefact.parent.mkdir()
    artefact.write_text("hello")
    results.artefact(artefact, kind="evidence")
    results.finding("something learnt")
    summary = results.finish()
    assert summary == {
        "phase": "p",
        "status": "completed",
        "checks": {"pass": 0, "fail": 0, "not_exercised": 0},
        "passed": True,
    }
    document = load_phase_results(path)
    assert document["measurements"][0]["value"] == 0.25
    assert document["measurements"][0]["tags"] == {"region": "EU"}
    assert document["tables"]["rows"] == [{"a": 1, "b": "x"}]
    assert document["tables"]["series"] == [{"t": 1.0, "v": None}]  # NaN is not JSON
    assert document["artefacts"][0]["path"] == "../artefacts/x.txt"
    assert (
        document["artefacts"][0]["sha256"]
        == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    assert document["status"] == "completed" and document["finished_at"] >= document["started_at"]


def test_watch_records_calls_until_finish(tmp_path: Path) -> None:
    log = CallLog()
    results = PhaseResults(tmp_path / "p.json", phase="p")
    results.watch(log)
    record = CallRecord("GET", "/health", "http://x/health", 200, 1.0, 0.01, "rid", None, "anonymous")
    log.add(record)
    results.finish()
    log.add(record)  # after finish: no longer recorded
    assert [c["route"] for c in read(tmp_path / "p.json")["calls"]] == ["/health"]


def test_in_memory_results_and_loading_errors(tmp_path: Path) -> None:
    results = PhaseResults(None, phase="p")
    results.check("a", expected=1, actual=1)
    assert results.finish()["passed"]
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match=r"not a beacon\.phase-results/v1"):
        load_phase_results(tmp_path / "x.json")
    with pytest.raises(ValueError, match="not a readable"):
        load_phase_results(tmp_path / "missing.json")


def test_to_jsonable() -> None:
    assert to_jsonable({1: {2, 1}, "b": b"\x01", "f": float("inf"), "a": np.array([1, 2])}) == {
        "1": [1, 2],
        "b": "01",
        "f": None,
        "a": [1, 2],
    }
