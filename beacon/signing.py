"""Signed JSON documents issued by Beacon (receipts, difference reports, harness receipts).

One convention for all of them, mirroring the JobSpec's: the document carries top-level
``public_key`` (base64 Ed25519) and ``signature`` (base64), and the signature covers the RFC 8785
bytes of the document without those two fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from beacon.canonical import jcs
from beacon.errors import VerificationError
from beacon.keys import Ed25519Key, b64decode, verify

SIGNATURE_FIELDS = ("signature", "public_key")

Key = TypeVar("Key", bytes, str)


class SignatureError(VerificationError):
    """A signed document does not verify; the message says why."""

    code = "bad_signature"


def signing_bytes(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: JCS of the document minus ``signature`` and ``public_key``."""
    return jcs({k: v for k, v in document.items() if k not in SIGNATURE_FIELDS})


def sign_document(document: dict[str, Any], key: Ed25519Key) -> dict[str, Any]:
    """A copy of ``document`` with ``public_key`` and ``signature`` set."""
    body = {k: v for k, v in document.items() if k not in SIGNATURE_FIELDS}
    return {**body, "public_key": key.public_key_b64, "signature": key.sign_b64(jcs(body))}


def verify_document(document: dict[str, Any], public_key: bytes | str | None = None) -> None:
    """Raise SignatureError unless ``document`` is signed by ``public_key`` (or by its own key if None).

    Pass the expected key whenever you have it: a document's own ``public_key`` proves integrity,
    not who signed it.
    """
    signature = document.get("signature")
    embedded = document.get("public_key")
    if not isinstance(signature, str) or not isinstance(embedded, str):
        raise SignatureError("the document has no signature/public_key")
    try:
        embedded_raw = b64decode(embedded)
    except ValueError as exc:
        raise SignatureError(f"public_key is not base64: {exc}") from exc
    if public_key is not None:
        expected = b64decode(public_key) if isinstance(public_key, str) else public_key
        if expected != embedded_raw:
            raise SignatureError("signed by a different key than the one expected")
    if not verify(embedded_raw, signing_bytes(document), signature):
        raise SignatureError("signature does not match the document")


def signed_by(
    document: dict[str, Any],
    public_keys: Iterable[Key],
    check: Callable[[dict[str, Any], Key], None] = verify_document,
) -> Key:
    """The first of ``public_keys`` that ``check`` accepts ``document`` under (a runner may have
    several keys: current and rotated). SignatureError with every distinct reason if none does.

    ``check`` raises SignatureError. To decide whether a receipt verifies, use
    :func:`beacon.verify.verify_receipt`, which checks its fields too.
    """
    reasons: list[str] = []
    for key in public_keys:
        try:
            check(document, key)
        except SignatureError as exc:
            reasons.append(str(exc))
            continue
        return key
    raise SignatureError("; ".join(dict.fromkeys(reasons)) or "no public key to check the signature with")
