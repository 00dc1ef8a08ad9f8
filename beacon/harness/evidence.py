"""Client-side verification of what a runner hands out: receipts, checkpoints, proofs, bundles.

Verification is separated from fetching (as in sigstore-python): these functions take the bytes
and documents a notebook fetched with :class:`beacon.client.BeaconClient`, plus the keys to trust,
and raise ``ValueError`` subclasses saying what failed. They use the transparency package's own
RFC 6962 / C2SP code, never the runner's word.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from beacon.receipts import RECEIPT_SCHEMA, verify_receipt
from beacon.signing import SignatureError, signed_by, verify_document
from beacon.transparency.checkpoint import CheckpointError, SignedCheckpoint, open_checkpoint
from beacon.transparency.merkle import ProofError, verify_consistency
from beacon.transparency.note import NoteError, Verifier
from beacon.transparency.proof import TlogProof, TlogProofError


class EvidenceError(ValueError):
    """A receipt, checkpoint, proof or bundle did not verify; the message says which and why."""


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

    An execution receipt is checked as a receipt (its id from execution and attempt, its output
    hash), not only its signature — the same check as ``beacon verify-receipt`` and ``verify-bundle``.
    """
    check = verify_receipt if receipt.get("schema") == RECEIPT_SCHEMA else verify_document
    try:
        return signed_by(receipt, public_keys, check)
    except SignatureError as exc:
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


def verify_receipt_inclusion(
    entry: bytes,
    index: int,
    proof: Sequence[str] | str,
    checkpoint_note: str,
    vkeys: Iterable[str],
    origin: str | None = None,
) -> SignedCheckpoint:
    """Check that ``entry`` (the leaf data: JCS bytes of a receipt) is leaf ``index`` of the log.

    ``proof`` is either the audit path as hex hashes (bound to ``checkpoint_note``) or a whole
    ``c2sp.org/tlog-proof@v1`` text, which carries its own checkpoint.
    """
    if isinstance(proof, str):
        try:
            parsed = TlogProof.parse(proof)
        except TlogProofError as exc:
            raise EvidenceError(f"tlog-proof: {exc}") from exc
        if parsed.index != index:
            raise EvidenceError(f"the tlog-proof is for leaf {parsed.index}, not {index}")
    else:
        parsed = TlogProof(index, tuple(_hashes(proof)), checkpoint_note)
    try:
        return parsed.verify(verifiers(vkeys), entry=entry, origin=origin)
    except TlogProofError as exc:
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
