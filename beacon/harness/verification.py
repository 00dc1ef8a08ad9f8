"""T+45, results verification: receipts, log, checkpoints, bundles and difference reports, client-side.

The notebook ``07-results-verification`` calls these functions in order and shows their tables;
each records its checks in the phase's :class:`~beacon.harness.results.PhaseResults`. Verification
is the one code the auditor CLI uses: receipts through :func:`beacon.verify.verify_receipt`
(fields, signature by a trusted key and inclusion under a signed checkpoint, as
``beacon verify-receipt``), bundles through :func:`beacon.transparency.bundle.verify_bundle` with the
runner key pinned (as ``beacon verify-bundle --runner-key``). The keys are the pinned ones where the
harness pins them (:mod:`beacon.harness.trust`), else trusted on first use; the first checkpoint seen
per tree size is kept, and a second root for a size is a fork. A check passes only on items
examined: zero receipts, bundles or reports is a failure, not a pass.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beacon.benchmark.registry import definition_for
from beacon.canonical import jcs
from beacon.client import BeaconClient, BeaconError
from beacon.harness import findings
from beacon.harness.evidence import (
    EvidenceError,
    open_signed_checkpoint,
    tlog_proof,
    verifiers,
    verify_checkpoint_consistency,
    verify_receipt_inclusion,
)
from beacon.harness.results import PhaseResults, load_phase_results
from beacon.harness.trust import PinnedKeys, TrustDecision, keys_to_trust, load_pins
from beacon.keys import b64decode
from beacon.transparency.bundle import verify_bundle
from beacon.transparency.checkpoint import SignedCheckpoint
from beacon.transparency.cid import compute_cid
from beacon.transparency.note import Verifier
from beacon.transparency.proof import TlogProof
from beacon.verify import ReceiptError, VerificationError, verify_inclusion, verify_receipt


@dataclass
class Trust:
    """The keys a client trusts, fetched once: the runner's signing keys and the log's verifier keys."""

    public_keys: list[str]
    vkeys: list[str]
    current_key: str | None = None
    decision: TrustDecision | None = None
    """How the keys were chosen (pinned, or trusted on first use); None: given by hand."""


@dataclass
class Verification:
    """What T+45 established so far (each step adds to it)."""

    client: BeaconClient
    trust: Trust
    artefacts: Path
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: dict[int, SignedCheckpoint] = field(default_factory=dict)
    forks: list[str] = field(default_factory=list)

    def remember(self, signed: SignedCheckpoint) -> None:
        """Keep the first checkpoint seen per tree size; another root for a size already seen is a fork
        (``consistency_valid`` fails on it)."""
        known = self.checkpoints.setdefault(signed.size, signed)
        if known.root != signed.root:
            self.forks.append(f"two roots for size {signed.size}")


def earlier_jobs_and_notes(results_dir: Path | None, *, exclude_phase: str) -> tuple[list[str], list[str]]:
    """The job ids and checkpoint notes the earlier phases of the run recorded in ``results_dir``."""
    job_ids: list[str] = []
    notes: list[str] = []
    if results_dir is None or not results_dir.is_dir():
        return job_ids, notes
    for path in sorted(results_dir.glob("*.json")):
        try:
            document = load_phase_results(path)
        except ValueError:
            continue
        if document.get("phase") == exclude_phase:
            continue
        tables = document.get("tables") or {}
        notes.extend(str(row["note"]) for row in tables.get("checkpoints_seen", []) if row.get("note"))
        for row in tables.get("executions", []):
            if row.get("job_id") and row["job_id"] not in job_ids:
                job_ids.append(str(row["job_id"]))
    return job_ids, notes


def fetch_trust(client: BeaconClient, artefacts: Path, pins: PinnedKeys | None = None) -> Trust:
    """The keys to verify with (saved as ``keys.json``): the pinned ones where ``pins`` (default: those
    the harness passed, :func:`beacon.harness.trust.load_pins`) name them, else the runner's and the
    log's own (trust on first use). A served key that was not pinned verifies nothing."""
    runner_keys = client.runner_keys()
    log_keys = client.log_keys()
    decision = keys_to_trust(runner_keys, log_keys, pins if pins is not None else load_pins())
    artefacts.mkdir(parents=True, exist_ok=True)
    (artefacts / "keys.json").write_text(
        json.dumps({"runner": runner_keys, "log": log_keys, "trust": decision.to_json()}, indent=2)
    )
    served = next((k["public_key"] for k in runner_keys.get("keys") or [] if k.get("current")), None)
    trusted = decision.runner_keys
    current = served if served in trusted else (trusted[0] if trusted else None)
    return Trust(
        public_keys=list(trusted), vkeys=list(decision.log_keys), current_key=current, decision=decision
    )


def record_trust(trust: Trust, results: PhaseResults) -> None:
    """The trust decision in the phase's parameters, and a finding saying whether keys were pinned."""
    if trust.decision is None:
        results.finding("keys given by hand (neither pinned nor fetched)", severity="warning")
        return
    results.parameters(trust=trust.decision.to_json())
    results.finding(
        f"keys {trust.decision.described}",
        severity="info" if trust.decision.mode == "pinned" else "warning",
    )


def _problems(items: Sequence[str]) -> str | None:
    return "; ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "") if items else None


def verify_receipts(
    state: Verification, job_ids: Iterable[str], results: PhaseResults, *, max_receipts: int = 200
) -> list[dict[str, Any]]:
    """Every execution's receipt: served, a valid receipt signed by the runner, included in the log."""
    problems: dict[str, list[str]] = {"retrieve": [], "signature": [], "inclusion": []}
    try:
        log_keys = verifiers(state.trust.vkeys)
    except EvidenceError:
        log_keys = []  # every inclusion then fails: no key to trust a checkpoint with
    rows = state.receipts
    receipts_file = state.artefacts / "receipts.jsonl"
    for job_id in job_ids:
        try:
            job = state.client.job(job_id, include_executions=True)
        except BeaconError as exc:
            problems["retrieve"].append(f"job {job_id}: {exc}")
            continue
        state.jobs[job_id] = job
        for execution in job.get("executions") or []:
            if len(rows) >= max_receipts:
                break
            row: dict[str, Any] = {
                "job_id": job_id,
                "execution_id": execution["id"],
                "region": execution.get("region"),
                "model": execution.get("model"),
                "receipt_id": execution.get("receipt_id"),
                "leaf_index": execution.get("leaf_index"),
                "signature_verified": False,
                "proof_verified": False,
                "cid": job.get("bundle_cid"),
            }
            rows.append(row)
            try:
                receipt = state.client.receipt(execution["id"])
            except BeaconError as exc:
                problems["retrieve"].append(f"{execution['id']}: {exc}")
                continue
            with receipts_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(receipt) + "\n")
            row["receipt_id"] = receipt.get("receipt_id", row["receipt_id"])
            proof: TlogProof | None = None
            if row["leaf_index"] is None:
                problems["inclusion"].append(f"{execution['id']}: no leaf index")
            else:
                try:
                    answer = state.client.inclusion_proof(int(row["leaf_index"]))
                    proof = tlog_proof(int(row["leaf_index"]), answer["proof"], answer["checkpoint"])
                except (EvidenceError, BeaconError, KeyError, TypeError) as exc:
                    problems["inclusion"].append(f"{execution['id']}: {exc}")
            signature_problem, inclusion_problem = _verify_receipt_row(state, row, receipt, proof, log_keys)
            if signature_problem:
                problems["signature"].append(f"{execution['id']}: {signature_problem}")
            if inclusion_problem:
                problems["inclusion"].append(f"{execution['id']}: {inclusion_problem}")
    results.table("receipts", rows)
    n = len(rows)
    served = n - len(problems["retrieve"])
    results.check(
        "receipts_retrievable",
        expected=f"{n} receipts served",
        actual=f"{served} served",
        passed=n > 0 and not problems["retrieve"],
        detail=_problems(problems["retrieve"]) or (None if n else "no execution to examine"),
    )
    results.check(
        "receipt_signatures_valid",
        expected="every receipt is well-formed and signed by a runner key",
        actual=f"{sum(r['signature_verified'] for r in rows)}/{n}",
        passed=n > 0 and all(r["signature_verified"] for r in rows),
        detail=_problems(problems["signature"] + problems["retrieve"]),
    )
    results.check(
        "inclusion_proofs_valid",
        expected="every receipt included in a signed checkpoint",
        actual=f"{sum(r['proof_verified'] for r in rows)}/{n}",
        passed=n > 0 and all(r["proof_verified"] for r in rows),
        detail=_problems(problems["inclusion"] + problems["retrieve"]),
    )
    return rows


def _verify_receipt_row(
    state: Verification,
    row: dict[str, Any],
    receipt: dict[str, Any],
    proof: TlogProof | None,
    log_keys: list[Verifier],
) -> tuple[str | None, str | None]:
    """Verify one receipt (:func:`beacon.verify.verify_receipt`) and mark ``row``; the problems found
    with the receipt and with its inclusion. A receipt that fails its own checks still gets its leaf
    checked, so the two checks of T+45 stay independent."""
    try:
        verified = verify_receipt(receipt, state.trust.public_keys, proof=proof, log_keys=log_keys)
    except ReceiptError as exc:
        if exc.check == "inclusion":
            row["signature_verified"] = True
            return None, str(exc)
        if proof is None:
            return str(exc), None
        try:
            signed = verify_inclusion(jcs(receipt), proof, log_keys)
        except VerificationError as inclusion:
            return str(exc), str(inclusion)
        state.remember(signed)
        row.update(proof_verified=True, checkpoint_size=signed.size)
        return str(exc), None
    row["signature_verified"] = True
    if verified.checkpoint is not None:
        state.remember(verified.checkpoint)
        row.update(proof_verified=True, checkpoint_size=verified.checkpoint.size)
    return None, None


def verify_transparency(
    state: Verification, results: PhaseResults, earlier_notes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Root, checkpoint, proof of leaf 0, entries matching receipts, and consistency of every checkpoint seen."""
    client, vkeys = state.client, state.trust.vkeys
    with results.attempt("transparency_root_valid"):
        root = client.transparency_root()
        signed = open_signed_checkpoint(root["checkpoint"], vkeys)
        state.remember(signed)
        results.check(
            "transparency_root_valid",
            expected={"root": signed.root.hex(), "size": signed.size},
            actual={"root": root.get("root"), "size": root.get("size")},
        )
    with results.attempt("checkpoint_signature_valid"):
        note = client.checkpoint()
        signed = open_signed_checkpoint(note, vkeys)
        state.remember(signed)
        (state.artefacts / "checkpoint.txt").write_text(note)
        results.check(
            "checkpoint_signature_valid",
            expected="verified by a log key",
            actual=list(signed.verified_by),
            passed=bool(signed.verified_by),
        )
    with results.attempt("proof_index0"):
        proof = client.inclusion_proof(0)
        leaf = client.log_entry(0)  # the entry's exact bytes are its JCS form
        signed = verify_receipt_inclusion(jcs(leaf), 0, proof["proof"], proof["checkpoint"], vkeys)
        results.check(
            "proof_index0",
            expected="leaf 0 included",
            actual=f"leaf 0 included in the checkpoint of size {signed.size}",
            passed=signed.size >= 1,  # verify_receipt_inclusion raised if it was not (attempt records it)
            evidence={"checkpoint_size": signed.size, "root": signed.root.hex()},
            examined=1,
        )
    with results.attempt("log_entries_match"):
        examined, mismatched = 0, []
        for row in state.receipts[:20]:
            if row["leaf_index"] is None:
                continue
            examined += 1
            served = client.log_entry(int(row["leaf_index"]))
            if served.get("receipt_id") != row["receipt_id"]:
                mismatched.append(row["leaf_index"])
        results.check(
            "log_entries_match",
            expected="entry i is the receipt with leaf index i",
            actual=mismatched or f"all {examined} match",
            passed=examined > 0 and not mismatched,
            detail=None if examined else "no receipt with a leaf index to compare",
        )
    table: list[dict[str, Any]] = []
    with results.attempt("consistency_valid"):
        for text in earlier_notes:
            state.remember(open_signed_checkpoint(text, vkeys))
        forks = state.forks
        sizes = sorted(state.checkpoints)
        proven = []
        for old, new in itertools.pairwise(sizes):
            answer = client.consistency_proof(old, new) if old > 0 else {"proof": []}
            verify_checkpoint_consistency(
                state.checkpoints[old], state.checkpoints[new], answer.get("proof", [])
            )
            proven.append({"from": old, "to": new, "consistent": True})
        table = [
            {
                "size": s,
                "root": state.checkpoints[s].root.hex(),
                "verified_by": ", ".join(state.checkpoints[s].verified_by),
                "consistent_with_previous": True if i else None,
            }
            for i, s in enumerate(sizes)
        ]
        results.table("checkpoints", table)
        (state.artefacts / "checkpoints.json").write_text(json.dumps(table, indent=2))
        if len(sizes) < 2 and not forks:
            results.skip(
                "consistency_valid",
                f"only one checkpoint (size {sizes[0] if sizes else '–'}) was seen: nothing to prove",
            )
        else:
            results.check(
                "consistency_valid",
                expected=f"each of the {len(sizes)} checkpoints seen extends the previous",
                actual=f"{len(proven)} consecutive pairs proven" + (f"; {', '.join(forks)}" if forks else ""),
                passed=len(proven) == len(sizes) - 1 and not forks,
                evidence=proven,
            )
    return table


def verify_bundles(state: Verification, results: PhaseResults) -> list[dict[str, Any]]:
    """Each job's bundle: served under its CID (recomputed here) and verified as ``beacon verify-bundle`` does."""
    runner_keys = [b64decode(key) for key in state.trust.public_keys]
    vkeys = [Verifier.parse(v) for v in state.trust.vkeys]
    rows = []
    for job_id, job in state.jobs.items():
        cid = job.get("bundle_cid")
        row: dict[str, Any] = {"job_id": job_id, "cid": cid, "cid_matches": False, "verified": False}
        rows.append(row)
        if not cid:
            row["problem"] = "no bundle CID on the job"
            continue
        try:
            data = state.client.bundle(cid)
        except BeaconError as exc:
            row["problem"] = f"{type(exc).__name__}: {exc}"
            continue
        row["bytes"] = len(data)
        row["cid_matches"] = compute_cid(data) == cid
        (state.artefacts / f"bundle-{cid}.json").write_bytes(data)
        try:
            report = verify_bundle(json.loads(data), runner_public_key=runner_keys or None, vkeys=vkeys)
        except ValueError as exc:
            row["problem"] = f"not a bundle: {exc}"
            continue
        row["verified"] = report.ok
        if not report.ok:
            row["problem"] = "; ".join(f"{name}: {detail}" for name, ok, detail in report.checks if not ok)[
                :300
            ]
    results.table("bundles", rows)
    detail = "; ".join(f"{r['job_id']}: {r['problem']}" for r in rows if r.get("problem")) or None
    results.check(
        "bundles_cid_verified",
        expected="every job's bundle served under its CID",
        actual=f"{sum(r['cid_matches'] for r in rows)}/{len(rows)}",
        passed=bool(rows) and all(r["cid_matches"] for r in rows),
        detail=detail or (None if rows else "no job to examine"),
    )
    results.check(
        "bundles_verified",
        expected="every bundle verifies offline (runner key pinned)",
        actual=f"{sum(r['verified'] for r in rows)}/{len(rows)}",
        passed=bool(rows) and all(r["verified"] for r in rows),
        detail=detail,
    )
    return rows


def verify_difference_reports(state: Verification, results: PhaseResults) -> list[dict[str, Any]]:
    """Every multi-region job has a difference report, signed by the runner and included in the log.

    The reports are saved verbatim (with the answers they compare) under ``difference-reports/`` for
    the report's findings section (:mod:`beacon.harness.findings`).
    """
    multi = [
        job_id
        for job_id, job in state.jobs.items()
        if definition_for(str(job.get("benchmark"))).compared
        and len({e["region"] for e in job.get("executions") or [] if e.get("status") == "completed"}) >= 2
    ]
    rows = findings.collect_difference_reports(
        state.client,
        multi,
        public_keys=state.trust.public_keys,
        vkeys=state.trust.vkeys,
        out_dir=state.artefacts / "difference-reports",
    )
    results.table(findings.TABLE, rows)
    missing = [r["job_id"] for r in rows if r["file"] is None]
    results.check(
        "diffs_available",
        expected=f"a difference report for each of the {len(multi)} multi-region jobs",
        actual=missing or f"all {len(rows)} served",
        passed=bool(multi) and not missing,
        detail=None if multi else "no job of this run completed in two or more regions",
    )
    bad = [f"{r['job_id']}: {r['problem']}" for r in rows if r["file"] and r["problem"]]
    results.check(
        "diff_reports_signed",
        expected="each report signed by the runner and included in the log",
        actual=f"{sum(r['signature_verified'] and r['inclusion_verified'] for r in rows)}/{len(rows)}",
        passed=bool(rows)
        and not missing
        and all(r["signature_verified"] and r["inclusion_verified"] for r in rows),
        detail=_problems(bad),
    )
    return rows


def check_dead_letters(
    state: Verification, operator: BeaconClient | None, results: PhaseResults
) -> list[dict[str, Any]]:
    """No message of this run's jobs ended in a dead-letter stream (needs an operator's client)."""
    if operator is None:
        results.fail("dead_letters_empty", "no operator token: set the variable the session names for it")
        return []
    with results.attempt("dead_letters_empty"):
        letters = operator.dead_letters(limit=200)
        ours = [
            d for d in letters.get("dead_letters", []) if (d.get("payload") or {}).get("job_id") in state.jobs
        ]
        results.check(
            "dead_letters_empty",
            expected=0,
            actual=len(ours),
            evidence=ours[:5],
            passed=bool(state.jobs) and not ours,
            detail=None if state.jobs else "no job to examine",
        )
        return ours
    return []


def record_artefacts(state: Verification, results: PhaseResults) -> list[str]:
    """Reference every saved file in the results; check the evidence files are there."""
    saved = sorted(
        p.relative_to(state.artefacts).as_posix() for p in state.artefacts.rglob("*") if p.is_file()
    )
    for name in saved:
        results.artefact(state.artefacts / name, kind="evidence", description="saved by T+45")
    results.check(
        "artefacts_captured",
        expected="receipts, checkpoints, keys",
        actual=saved,
        passed={"receipts.jsonl", "checkpoints.json", "keys.json"} <= set(saved),
    )
    return saved
