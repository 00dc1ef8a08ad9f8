"""The run attests itself: its files' hashes, signed by the runner and appended to its log.

After the phases, the harness hashes every file of the run folder that records what was run and
what came out (the plan and input notebooks as run, the parameters, the executed notebooks and
their HTML, the phase results, the monitor samples, the logs, ``summary.json``), sends that
document to ``POST /api/v1/transparency/attestations``, and stores the answer — a harness receipt
signed with the runner key, its leaf index, a signed checkpoint and the inclusion proof — in
``attestation.json`` together with the runner's and the log's public keys.

``beacon verify-report`` then checks, offline: every hash, that the receipt covers exactly this
document, the receipt's signature, the checkpoint's signature and the receipt's inclusion in the
checkpoint's tree. ``index.html`` and ``plots/`` are rendered afterwards from ``summary.json``
(``beacon report`` re-renders them), so they are not covered.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beacon.canonical import jcs, jcs_sha256, sha256_file
from beacon.harness.results import write_json_atomic

DOCUMENT_TYPE = "beacon.harness-run/v1"
ATTESTATION_FILE = "attestation.json"
COVERED_DIRS = ("inputs", "notebooks", "results", "logs", "artefacts")
COVERED_FILES = ("summary.json", "monitor.jsonl")
NOT_COVERED = ("index.html", ATTESTATION_FILE, "attestation-error.json")


def covered_files(run_dir: Path) -> list[Path]:
    """The files an attestation covers, in a stable order."""
    files: list[Path] = []
    for name in COVERED_FILES:
        if (run_dir / name).is_file():
            files.append(run_dir / name)
    for folder in COVERED_DIRS:
        if (run_dir / folder).is_dir():
            files.extend(sorted(p for p in (run_dir / folder).rglob("*") if p.is_file()))
    return files


def attestation_document(run_dir: Path) -> dict[str, Any]:
    """The document of hashes the runner is asked to sign."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    files = {str(path.relative_to(run_dir)): sha256_file(path) for path in covered_files(run_dir)}
    parameters = {phase["id"]: phase.get("parameters") or {} for phase in summary.get("phases", [])}
    return {
        "type": DOCUMENT_TYPE,
        "run_id": summary["run_id"],
        "plan": summary.get("plan", {}).get("name"),
        "status": summary.get("status"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "files": files,
        "parameters_sha256": {phase: jcs_sha256(values) for phase, values in parameters.items()},
        "summary_sha256": files.get("summary.json"),
    }


def attest_run(run_dir: Path, runner_url: str, token: str | None) -> dict[str, Any]:
    """Ask the runner to sign and log this run's hashes; write and return ``attestation.json``."""
    from beacon.client import BeaconClient

    if not token:
        raise RuntimeError("no operator token: the runner only takes attestations from operators and admins")
    document = attestation_document(run_dir)
    with BeaconClient(runner_url, token=token, label="harness") as client:
        response = client.attest(document, idempotency_key=f"harness-run-{document['run_id']}")
        runner_keys = client.runner_keys()
        log_keys = client.log_keys()
    record = {
        "document": document,
        "response": response,
        "runner_keys": runner_keys,
        "log_keys": log_keys,
        "runner_url": runner_url,
        "attested_at": time.time(),
    }
    write_json_atomic(run_dir / ATTESTATION_FILE, record)
    return record


# --- verification -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The outcome of ``beacon verify-report``: one line per check."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)


def _public_keys(runner_keys: dict[str, Any] | None) -> list[str]:
    """Base64 public keys from a ``GET /api/v1/keys`` answer (``{"keys": [{"public_key"}]}``)."""
    return [entry["public_key"] for entry in (runner_keys or {}).get("keys", [])]


def _vkeys(log_keys: dict[str, Any] | None) -> list[str]:
    """Verifier keys from a ``GET /api/v1/transparency/keys`` answer (``{"keys": [{"vkey"}]}``)."""
    return [entry["vkey"] for entry in (log_keys or {}).get("keys", [])]


def verify_report(run_dir: Path, *, runner_key: str | None = None, log_vkey: str | None = None) -> Verdict:
    """Check a run folder against its attestation (offline). Pin keys to check who signed."""
    from beacon.harness.evidence import EvidenceError, verify_receipt_inclusion, verify_runner_signature

    verdict = Verdict()
    path = run_dir / ATTESTATION_FILE
    if not path.is_file():
        error = run_dir / "attestation-error.json"
        reason = json.loads(error.read_text())["error"] if error.is_file() else "no attestation.json"
        verdict.add("attestation present", False, reason)
        return verdict
    record = json.loads(path.read_text(encoding="utf-8"))
    document: dict[str, Any] = record["document"]
    response: dict[str, Any] = record["response"]

    # 1. every attested file is unchanged, and nothing attested is missing
    listed: dict[str, str] = document.get("files", {})
    changed = [
        name
        for name, digest in listed.items()
        if not (run_dir / name).is_file() or sha256_file(run_dir / name) != digest
    ]
    verdict.add(
        "file hashes",
        not changed,
        f"{len(listed)} files match" if not changed else "changed or missing: " + ", ".join(changed[:10]),
    )
    present = {str(p.relative_to(run_dir)) for p in covered_files(run_dir)}
    unlisted = sorted(present - set(listed))
    if unlisted:
        verdict.notes.append("files added after the attestation (not covered): " + ", ".join(unlisted[:10]))
    if document.get("summary_sha256") != listed.get("summary.json"):
        verdict.add("summary hash", False, "the document's summary_sha256 differs from its file list")

    # 2. the receipt covers exactly this document
    receipt: dict[str, Any] = response["receipt"]
    bound = _receipt_binds(receipt, document)
    verdict.add("receipt covers the document", bound, "" if bound else "the receipt's document hash differs")

    # 3. the receipt is signed by the runner
    keys = [runner_key] if runner_key else _public_keys(record.get("runner_keys"))
    if not runner_key:
        verdict.notes.append("runner key taken from attestation.json (pin one with --runner-key)")
    try:
        key = verify_runner_signature(receipt, keys)
        verdict.add("receipt signature", True, f"signed by {key[:16]}…")
    except EvidenceError as exc:
        verdict.add("receipt signature", False, str(exc))

    # 4. the receipt is in the log: checkpoint signature and inclusion proof
    vkeys = [log_vkey] if log_vkey else _vkeys(record.get("log_keys"))
    if not log_vkey:
        verdict.notes.append("log key taken from attestation.json (pin one with --log-vkey)")
    try:
        checkpoint = verify_receipt_inclusion(
            jcs(receipt),
            int(response["leaf_index"]),
            response["proof"],
            response["checkpoint"],
            vkeys,
        )
        verdict.add(
            "inclusion in the transparency log",
            True,
            f"leaf {response['leaf_index']} in the signed checkpoint of size {checkpoint.size}",
        )
    except (ValueError, KeyError) as exc:
        verdict.add("inclusion in the transparency log", False, str(exc))
    return verdict


def _receipt_binds(receipt: dict[str, Any], document: dict[str, Any]) -> bool:
    """True if the harness receipt carries exactly this attestation (and its JCS SHA-256)."""
    return bool(
        receipt.get("attestation") == document and receipt.get("attestation_sha256") == jcs_sha256(document)
    )
