"""The one verification path of a receipt: everything it claims, or a :class:`ReceiptError` saying what not.

Every caller that decides "this receipt verifies" — ``beacon verify-receipt``, ``beacon verify-bundle``,
``beacon verify-report``, the harness's T+45 (``beacon.harness.verification``, notebook 07) — calls
:func:`verify_receipt`, which checks, in this order:

1. ``form``: a JSON object of a known receipt ``schema`` with the fields that schema requires (a
   document of no receipt schema — a difference report, say — is a signed document and claims no more);
2. ``receipt_id``: an execution receipt's id derives from (execution_id, attempt);
3. ``output``: ``output.sha256`` is the hash of ``output.text``, and of the output the caller holds;
   a harness receipt's ``attestation_sha256`` is the JCS SHA-256 of its attestation;
4. ``signature``: by one of the pinned runner keys (a receipt's own ``public_key`` proves nothing);
5. ``inclusion``: when a proof is given, the receipt's JCS bytes are its leaf, under a checkpoint
   signed by a log key (default: a runner key under the checkpoint's origin, Beacon's log key naming).

Errors share one root, :class:`VerificationError` (from :mod:`beacon.errors`, below the layers this
module uses so they can subclass it); :class:`ExitCode` is the exit status of every verifying command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from beacon.canonical import CanonicalizationError, jcs, jcs_sha256, sha256_hex
from beacon.errors import ExitCode, VerificationError
from beacon.keys import b64decode, b64encode
from beacon.receipts import HARNESS_RECEIPT_SCHEMA, RECEIPT_SCHEMA, REQUIRED_FIELDS, receipt_id
from beacon.signing import SignatureError, signed_by, verify_document
from beacon.transparency.checkpoint import Checkpoint, CheckpointError, SignedCheckpoint
from beacon.transparency.note import NoteError, Verifier, split_note
from beacon.transparency.proof import TlogProof, TlogProofError

CHECKS = ("form", "receipt_id", "output", "signature", "inclusion")
"""What :func:`verify_receipt` checks, in order; :attr:`ReceiptError.check` names the one that failed."""


class ReceiptError(SignatureError):
    """A receipt does not verify; ``check`` names the failed check (one of :data:`CHECKS`)."""

    code = "bad_receipt"

    def __init__(self, message: str, check: str = "form") -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class VerifiedReceipt:
    """What :func:`verify_receipt` established."""

    receipt_id: str | None
    signed_by: str
    """The runner key (base64) that signed it."""
    checkpoint: SignedCheckpoint | None = None
    """The signed checkpoint it is included under; None when no proof was given (inclusion not checked)."""
    leaf_index: int | None = None


def _check_execution_receipt(receipt: dict[str, Any], output: str | None) -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in receipt]
    if missing:
        raise ReceiptError(f"the receipt lacks {', '.join(missing)}")
    try:
        expected_id = receipt_id(str(receipt["execution_id"]), int(receipt["attempt"]))
    except (TypeError, ValueError) as exc:
        raise ReceiptError(f"attempt is not a number: {exc}", "receipt_id") from exc
    if receipt["receipt_id"] != expected_id:
        raise ReceiptError("receipt_id does not match (execution_id, attempt)", "receipt_id")
    claimed = receipt.get("output")
    if not isinstance(claimed, dict):
        raise ReceiptError("output is not an object", "output")
    text = claimed.get("text")
    if text is not None and claimed.get("sha256") != sha256_hex(str(text).encode()):
        raise ReceiptError("output.sha256 does not match output.text", "output")
    if output is not None and claimed.get("sha256") != sha256_hex(output.encode()):
        raise ReceiptError("output.sha256 does not match the output given", "output")


def _check_harness_receipt(receipt: dict[str, Any], output: str | None) -> None:
    if not isinstance(receipt.get("attestation"), dict):
        raise ReceiptError("the harness receipt carries no attestation object")
    try:
        digest = jcs_sha256(receipt["attestation"])
    except CanonicalizationError as exc:
        raise ReceiptError(f"the attestation has no canonical form: {exc}", "output") from exc
    if receipt.get("attestation_sha256") != digest:
        raise ReceiptError("attestation_sha256 does not match the attestation", "output")


SCHEMAS: dict[str, Callable[[dict[str, Any], str | None], None]] = {
    RECEIPT_SCHEMA: _check_execution_receipt,
    HARNESS_RECEIPT_SCHEMA: _check_harness_receipt,
}
RECEIPT_FAMILIES = tuple(schema.split("/")[0] + "/" for schema in SCHEMAS)
"""A receipt schema of another version than those above is refused: a receipt this code cannot check
does not verify. A document of any other schema (or none) is a signed document and claims no more."""


def _keys(public_keys: bytes | str | Iterable[bytes | str]) -> list[str]:
    listed = [public_keys] if isinstance(public_keys, bytes | str) else list(public_keys)
    return [key if isinstance(key, str) else b64encode(key) for key in listed]


def verify_receipt(
    receipt: Any,
    public_keys: bytes | str | Iterable[bytes | str],
    *,
    proof: TlogProof | str | None = None,
    log_keys: Sequence[Verifier] | None = None,
    index: int | None = None,
    output: str | None = None,
) -> VerifiedReceipt:
    """Check everything ``receipt`` claims (module docstring); :class:`ReceiptError` on the first failure.

    ``public_keys``: the pinned runner key(s), base64 or raw (current and rotated). ``proof``: its
    tlog-proof, checked against ``log_keys`` (default: ``public_keys`` under the checkpoint's origin)
    and, when given, the expected leaf ``index``. ``output``: the answer text the caller holds.
    """
    if not isinstance(receipt, dict):
        raise ReceiptError("a receipt is a JSON object")
    schema = receipt.get("schema")
    check = SCHEMAS.get(schema) if isinstance(schema, str) else None
    if check is not None:
        check(receipt, output)
    elif schema is not None and (not isinstance(schema, str) or schema.startswith(RECEIPT_FAMILIES)):
        raise ReceiptError(f"unknown receipt schema {schema!r}; expected one of {', '.join(SCHEMAS)}")
    elif output is not None:
        raise ReceiptError("the document has no output to compare with the output given", "output")
    keys = _keys(public_keys)
    if not keys:
        raise ReceiptError("no runner key to check the signature with: pin one", "signature")
    try:
        signer = signed_by(receipt, keys, verify_document)
    except SignatureError as exc:
        raise ReceiptError(str(exc), "signature") from exc
    rid = receipt.get("receipt_id")
    verified = VerifiedReceipt(rid if isinstance(rid, str) else None, signer)
    if proof is None:
        return verified
    parsed = proof if isinstance(proof, TlogProof) else _parse_proof(proof)
    if index is not None and parsed.index != index:
        raise ReceiptError(f"the tlog-proof is for leaf {parsed.index}, not {index}", "inclusion")
    verifiers = list(log_keys) if log_keys is not None else _runner_log_keys(keys, parsed.checkpoint_note)
    signed = verify_inclusion(jcs(receipt), parsed, verifiers)
    return VerifiedReceipt(verified.receipt_id, signer, signed, parsed.index)


def verify_inclusion(
    entry: bytes, proof: TlogProof | str, log_keys: Sequence[Verifier], *, origin: str | None = None
) -> SignedCheckpoint:
    """The checkpoint, signed by one of ``log_keys`` (of log ``origin`` when given), under which ``entry``
    (a leaf's exact bytes) is included; ReceiptError (check ``inclusion``) if not."""
    parsed = proof if isinstance(proof, TlogProof) else _parse_proof(proof)
    try:
        return parsed.verify(log_keys, entry=entry, origin=origin)
    except TlogProofError as exc:
        raise ReceiptError(str(exc), "inclusion") from exc


def _parse_proof(text: str) -> TlogProof:
    try:
        return TlogProof.parse(text)
    except TlogProofError as exc:
        raise ReceiptError(f"tlog-proof: {exc}", "inclusion") from exc


def _runner_log_keys(keys: Sequence[str], checkpoint_note: str) -> list[Verifier]:
    """The runner keys as log keys under the checkpoint's origin (the runner signs its log)."""
    try:
        origin = Checkpoint.parse_text(split_note(checkpoint_note)[0]).origin
        return [Verifier(origin, b64decode(key)) for key in keys]
    except (CheckpointError, NoteError, ValueError) as exc:
        raise ReceiptError(f"the proof's checkpoint: {exc}", "inclusion") from exc


__all__ = [
    "CHECKS",
    "ExitCode",
    "ReceiptError",
    "VerificationError",
    "VerifiedReceipt",
    "verify_inclusion",
    "verify_receipt",
]
