"""JobSpecs the phases submit (signed as intake verifies them) and the rows read back from jobs."""

from __future__ import annotations

from beacon.harness import jobs
from beacon.intake import Scheme, stamp, verify_jobspec
from beacon.keys import Ed25519Key


def test_signed_jobspecs_verify_under_the_primary_scheme() -> None:
    key = Ed25519Key.generate()
    document = jobs.sign(jobs.jobspec("j-1", regions=["US", "EU"], models=["m"], max_tokens=8), key)
    assert document["metadata"]["timestamp"].endswith("Z") and len(document["metadata"]["nonce"]) == 32
    assert document["constraints"] == {"regions": ["US", "EU"], "min_regions": 2}
    verification = verify_jobspec(document)
    assert verification.scheme is Scheme.JCS
    assert stamp(document)["metadata"] == document["metadata"]  # stamping keeps what is there
    assert jobs.minimal_jobspec("x") == {
        "id": "x",
        "version": "1",
        "benchmark": "noop",
        "container": {"image": "noop"},
    }


def test_timeline_and_execution_rows() -> None:
    job = {
        "id": "j",
        "timeline": [
            {"status": "completed", "at": "2026-01-01T00:00:03Z"},
            {"status": "created", "at": "2026-01-01T00:00:00Z"},
            {"status": "enqueued", "at": "2026-01-01T00:00:00Z"},
            {"status": "executing", "at": "2026-01-01T00:00:01.5Z"},
        ],
        "executions": [
            {
                "id": "e",
                "region": "EU",
                "served_region": "EU",
                "model": "m",
                "question_id": "q",
                "status": "completed",
                "timings": {"total": 1.5, "load": 0.4, "wait": 0.1, "duration_s": 1.6, "queue_wait_s": 0.2},
                "tokens_out": 9,
            }
        ],
    }
    rows = jobs.timeline_rows(job)
    assert jobs.states_in_order(rows) == [
        "created",
        "enqueued",
        "executing",
        "completed",
    ]  # ties in state order
    (row,) = jobs.execution_rows(job)
    assert row["latency_s"] == 1.0  # backend time without loading or waiting for the model
    assert row["queue_s"] == 0.2 and row["duration_s"] == 1.6
    assert jobs.inference_seconds({"duration_s": 2.0}) == 2.0
    assert jobs.inference_seconds(None) is None


def test_peak_concurrent_regions() -> None:
    def execution(region: str, start: int, end: int) -> dict:
        return {
            "region": region,
            "started_at": f"2026-01-01T00:00:{start:02d}Z",
            "finished_at": f"2026-01-01T00:00:{end:02d}Z",
        }

    overlapping = [{"executions": [execution("US", 0, 5), execution("EU", 1, 2), execution("US", 3, 4)]}]
    assert jobs.peak_concurrent_regions(overlapping) == 2
    back_to_back = [{"executions": [execution("US", 0, 2), execution("EU", 2, 4)]}]
    assert jobs.peak_concurrent_regions(back_to_back) == 1
    assert jobs.peak_concurrent_regions([]) == 0
