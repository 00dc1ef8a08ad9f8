"""Client-side verification of what a runner hands out: receipts, checkpoints, proofs, bundles.

Verification is separated from fetching (as in sigstore-python): these functions take the bytes
and documents a notebook fetched with :class:`beacon.client.BeaconClient`, plus the keys to trust,
and raise :class:`EvidenceError` (a :class:`beacon.verify.VerificationError`) saying what failed.
Receipts and leaves are checked by :mod:`beacon.verify`, the one path the auditor CLI uses too; the
log's RFC 6962 / C2SP code is the transparency package's own, never the runner's word.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from beacon.transparency.checkpoint import CheckpointError, SignedCheckpoint, open_checkpoint
from beacon.transparency.merkle import ProofError, verify_consistency
from beacon.transparency.note import NoteError, Verifier
from beacon.transparency.proof import TlogProof
from beacon.verify import VerificationError, verify_inclusion, verify_receipt


class EvidenceError(VerificationError):
    """A receipt, checkpoint, proof or bundle did not verify; the message says which and why."""

    code = "bad_evidence"


def verifiers(vkeys: Iterable[str]) -> list[Verifier]:
    """C2SP verifier keys (``name+hexid+base64``) as verifiers; EvidenceError on a malformed one."""
    out = []
    for vkey in vkeys:
        try:
            out.append(Verifier.parse(vkey))
        except NoteError as exc:
            raise EvidenceError(f"verifier key {vkey[:40]!r}: {exc}") from exc
    if not out:
        raise EvidenceError("no verifier key for the log")
    return out


def verify_runner_signature(receipt: dict[str, Any], public_keys: Sequence[str]) -> str:
    """The runner key (base64) that signed ``receipt`` (or any Beacon document: a difference report …);
    EvidenceError if none of ``public_keys`` did.

    A receipt is checked as :func:`beacon.verify.verify_receipt` checks it (its id, its output hash,
    its signature), the same check as ``beacon verify-receipt`` and ``verify-bundle``.
    """
    try:
        return verify_receipt(receipt, public_keys).signed_by
    except VerificationError as exc:
        raise EvidenceError(f"receipt signature: {exc}") from exc


def open_signed_checkpoint(note: str, vkeys: Iterable[str], origin: str | None = None) -> SignedCheckpoint:
    """Verify a checkpoint note's signature with the log's keys and parse it."""
    try:
        return open_checkpoint(note, verifiers(vkeys), origin)
    except CheckpointError as exc:
        raise EvidenceError(str(exc)) from exc


def _hashes(values: Sequence[str]) -> list[bytes]:
    try:
        return [bytes.fromhex(value) for value in values]
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"proof hashes must be hex: {exc}") from exc


def tlog_proof(index: int, proof: Sequence[str] | str, checkpoint_note: str) -> TlogProof:
    """The proof of leaf ``index``: an audit path as hex hashes (bound to ``checkpoint_note``) or a whole
    ``c2sp.org/tlog-proof@v1`` text, which carries its own checkpoint."""
    if isinstance(proof, str):
        try:
            parsed = TlogProof.parse(proof)
        except VerificationError as exc:
            raise EvidenceError(f"tlog-proof: {exc}") from exc
        if parsed.index != index:
            raise EvidenceError(f"the tlog-proof is for leaf {parsed.index}, not {index}")
        return parsed
    return TlogProof(index, tuple(_hashes(proof)), checkpoint_note)


def verify_receipt_inclusion(
    entry: bytes,
    index: int,
    proof: Sequence[str] | str,
    checkpoint_note: str,
    vkeys: Iterable[str],
    origin: str | None = None,
) -> SignedCheckpoint:
    """Check that ``entry`` (the leaf data: JCS bytes of a receipt) is leaf ``index`` of the log
    (:func:`beacon.verify.verify_inclusion`); ``proof`` as :func:`tlog_proof` takes it."""
    parsed, keys = tlog_proof(index, proof, checkpoint_note), verifiers(vkeys)
    try:
        return verify_inclusion(entry, parsed, keys, origin=origin)
    except VerificationError as exc:
        raise EvidenceError(f"leaf {index}: {exc}") from exc


def verify_checkpoint_consistency(old: SignedCheckpoint, new: SignedCheckpoint, proof: Sequence[str]) -> None:
    """Check that ``new`` extends ``old`` (an append-only log, no fork)."""
    if old.size == new.size:
        if old.root != new.root:
            raise EvidenceError(f"two different roots for size {old.size}: the log forked")
        return
    if old.size > new.size:
        old, new = new, old
    if old.size == 0:
        return  # every tree extends the empty tree
    try:
        verify_consistency(old.size, new.size, old.root, new.root, _hashes(proof))
    except ProofError as exc:
        raise EvidenceError(f"consistency {old.size} → {new.size}: {exc}") from exc
