"""T+45's checks (beacon.harness.verification) against a real runner that makes them fail."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from beacon.client import BeaconClient
from beacon.harness import verification as v
from beacon.harness.evidence import EvidenceError, verify_runner_signature
from beacon.harness.results import PhaseResults
from beacon.harness.trust import PinnedKeys
from beacon.keys import Ed25519Key
from beacon.receipts import issue_receipt_with_leaf
from beacon.signing import sign_document
from tests.harness.conftest import SeededRunner
from tests.test_receipts import FACTS


def statuses(results: PhaseResults) -> dict[str, str]:
    return {c["id"]: c["status"] for c in results.checks}


def test_receipts_are_checked_as_receipts_not_only_their_signature() -> None:
    key = Ed25519Key.generate()
    receipt = issue_receipt_with_leaf(FACTS, key)[0]
    assert verify_runner_signature(receipt, [key.public_key_b64]) == key.public_key_b64
    # Re-signed by the runner key after the text changed: the signature verifies, the receipt does not.
    altered = sign_document({**receipt, "output": {**receipt["output"], "text": "something else"}}, key)
    with pytest.raises(EvidenceError, match=r"output\.sha256"):
        verify_runner_signature(altered, [key.public_key_b64])
    with pytest.raises(EvidenceError):
        verify_runner_signature(receipt, [Ed25519Key.generate().public_key_b64])


def test_a_job_without_receipts_or_bundle_fails_its_checks(
    seeded_runner: SeededRunner, tmp_path: Path
) -> None:
    artefacts = tmp_path / "artefacts" / "t+45"
    results = PhaseResults(tmp_path / "results" / "t+45.json", phase="t+45")
    with BeaconClient(seeded_runner.url) as client:
        state = v.Verification(client, v.fetch_trust(client, artefacts), artefacts)
        rows = v.verify_receipts(state, [seeded_runner.job_id], results)
        v.verify_transparency(state, results)
        v.verify_bundles(state, results)
        reports = v.verify_difference_reports(state, results)
        v.record_artefacts(state, results)
    got = statuses(results)
    assert len(rows) == 9
    assert got["receipts_retrievable"] == "fail"  # the executions have receipt ids but no receipts
    assert got["receipt_signatures_valid"] == "fail" and got["inclusion_proofs_valid"] == "fail"
    assert got["bundles_cid_verified"] == "fail" and got["bundles_verified"] == "fail"
    assert got["log_entries_match"] == "fail"  # no receipt has a leaf to compare
    # The difference report itself is real: signed by the runner, included in the log, and saved.
    assert got["diffs_available"] == "pass" and got["diff_reports_signed"] == "pass", results.checks
    (report,) = reports
    assert report["signature_verified"] and report["inclusion_verified"]
    saved = json.loads(Path(report["file"]).read_text())
    assert saved == seeded_runner.report
    assert got["transparency_root_valid"] == "pass" and got["checkpoint_signature_valid"] == "pass"
    assert Path(report["file"]).is_relative_to(artefacts)


def test_untrusted_keys_and_no_jobs_fail(seeded_runner: SeededRunner, tmp_path: Path) -> None:
    artefacts = tmp_path / "artefacts"
    with BeaconClient(seeded_runner.url) as client:
        trust = v.fetch_trust(client, artefacts)
        untrusted = v.Trust(public_keys=[Ed25519Key.generate().public_key_b64], vkeys=trust.vkeys)
        state = v.Verification(client, untrusted, artefacts)
        results = PhaseResults(None, phase="t+45")
        v.verify_receipts(state, [seeded_runner.job_id], results)
        v.verify_difference_reports(state, results)
        assert statuses(results)["diff_reports_signed"] == "fail"

        empty = PhaseResults(None, phase="t+45")
        nothing = v.Verification(client, trust, tmp_path / "empty")
        v.verify_receipts(nothing, [], empty)
        v.verify_bundles(nothing, empty)
        v.verify_difference_reports(nothing, empty)
        v.check_dead_letters(nothing, client, empty)
    assert set(statuses(empty).values()) == {"fail"}, empty.checks  # zero examined is never a pass


def test_a_runner_key_not_pinned_verifies_nothing(seeded_runner: SeededRunner, tmp_path: Path) -> None:
    artefacts = tmp_path / "artefacts"
    pinned = Ed25519Key.generate().public_key_b64
    with BeaconClient(seeded_runner.url) as client:
        trust = v.fetch_trust(client, artefacts, PinnedKeys(runner=(pinned,), source="test"))
        assert trust.public_keys == [pinned] and trust.current_key == pinned
        assert trust.decision is not None and trust.decision.mode == "pinned"
        assert trust.decision.unpinned_served["runner"]  # the runner's own key is served, not trusted
        results = PhaseResults(None, phase="t+45")
        v.record_trust(trust, results)
        state = v.Verification(client, trust, artefacts)
        v.verify_difference_reports(state, results)
        assert statuses(results)["diff_reports_signed"] == "fail"
        assert results.doc["parameters"]["trust"]["mode"] == "pinned"
        assert any("pinned (test" in f["text"] for f in results.doc["findings"])
        first_use = PhaseResults(None, phase="t+45")
        v.record_trust(v.fetch_trust(client, artefacts), first_use)
        assert [f["severity"] for f in first_use.doc["findings"]] == ["warning"]
        assert "trusted on first use" in first_use.doc["findings"][0]["text"]


def test_a_second_root_for_a_size_already_seen_is_a_fork(seeded_runner: SeededRunner, tmp_path: Path) -> None:
    artefacts = tmp_path / "artefacts"
    with BeaconClient(seeded_runner.url) as client:
        trust = v.fetch_trust(client, artefacts)
        clean = v.Verification(client, trust, artefacts)
        clean_results = PhaseResults(None, phase="t+45")
        v.verify_transparency(clean, clean_results)
        assert statuses(clean_results)["proof_index0"] == "pass"
        assert statuses(clean_results)["consistency_valid"] != "fail"
        (seen,) = clean.checkpoints.values()
        forked = replace(seen, checkpoint=replace(seen.checkpoint, root=bytes(32)))
        state = v.Verification(client, trust, artefacts)
        state.remember(forked)  # seen first: the runner's own checkpoint of that size is the second root
        results = PhaseResults(None, phase="t+45")
        v.verify_transparency(state, results)
    assert state.checkpoints[seen.size] is forked  # the first one seen is kept
    assert statuses(results)["consistency_valid"] == "fail"  # also with a single size seen
    assert "two roots for size" in results.get_check("consistency_valid")["actual"]
