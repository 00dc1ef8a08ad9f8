"""The common tables as DataFrames, from a real runner through the client and from real receipts."""

from __future__ import annotations

from beacon.client import BeaconClient
from beacon.frames import receipts_frame
from beacon.keys import Ed25519Key
from beacon.receipts import issue_receipt_with_leaf
from tests.harness.conftest import SeededRunner, seeded_runner  # noqa: F401 (the fixture)
from tests.test_receipts import FACTS


def test_client_frames(seeded_runner: SeededRunner) -> None:  # noqa: F811
    with BeaconClient(seeded_runner.url) as client:
        jobs = client.jobs_frame()
        executions = client.executions_frame([seeded_runner.job_id])
        diffs = client.diffs_frame()
    assert set(jobs["id"]) == {seeded_runner.job_id, seeded_runner.answered_job_id}
    assert len(executions) == 9 and set(executions["region"]) == {"US", "EU", "ASIA"}
    assert {"latency_s", "queue_s", "model", "status", "backend"} <= set(executions.columns)
    listed = diffs.set_index("job_id")
    assert listed.loc[seeded_runner.job_id, "id"] == seeded_runner.report["id"]
    assert listed.loc[seeded_runner.job_id, "leaf_index"] is not None


def test_receipts_frame() -> None:
    receipt = issue_receipt_with_leaf(FACTS, Ed25519Key.generate())[0]
    (row,) = receipts_frame([receipt]).to_dict("records")
    assert row["receipt_id"] == receipt["receipt_id"] and row["region"] == "ASIA"
    assert row["model"] == "smollm2-135m" and row["backend"] == "llamacpp"
    assert row["output_sha256"] == receipt["output"]["sha256"]
