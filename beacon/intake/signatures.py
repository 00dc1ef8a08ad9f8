"""JobSpec signatures: Beacon's own scheme and the two legacy schemes of the original runner.

| scheme      | message signed (Ed25519)                                                             |
|-------------|--------------------------------------------------------------------------------------|
| ``jcs``     | ``JOBSPEC_CONTEXT`` (``beacon-jobspec/v1`` + LF) followed by the RFC 8785 bytes of the |
|             | document minus ``signature`` and ``public_key``                                       |
| ``go-strip``| Go-compatible canonical JSON (reference §4.2) of the document minus those two (S1)    |
| ``portal-v1``| Go-compatible canonical JSON of the document minus ``id``, ``created_at``,          |
|             | ``signature``, ``public_key``, with null/""/0/empty-object values pruned (S4)         |

Domain separation (docs/decisions/1601-domain-separated-jobspec-signatures.md): every legacy
message is a JSON object and so starts with ``{``; Beacon's starts with its context line, so a
signature made by Beacon's scheme never verifies under a legacy one and the reverse. The legacy
schemes are tried only for documents in the original runner's shape (:func:`legacy_shape_problem`).

Every scheme is computed on the document exactly as parsed, before any defaulting. portal-v1
pruning means a value such as ``"max_cost": 0`` would ride along unsigned, so a document that
*contains* a prunable value is refused under portal-v1; its ``id`` and ``created_at`` are unsigned
and reported as such, and the runner names a portal-v1 job itself (the nonce, not the id, stops a
replay).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from beacon.canonical import CanonicalizationError, go_canonical, jcs
from beacon.intake.errors import IntakeError
from beacon.keys import Ed25519Key, b64decode, b64encode, decode_public_key, key_id
from beacon.signing import SIGNATURE_FIELDS


class Scheme(StrEnum):
    JCS = "jcs"
    GO_STRIP = "go-strip"
    PORTAL_V1 = "portal-v1"


PORTAL_V1_EXCLUDED = ("id", "created_at", "signature", "public_key")

JOBSPEC_CONTEXT = b"beacon-jobspec/v1\n"
"""The context line that starts every message Beacon's own scheme signs (no JSON text starts so)."""

LEGACY_TOP_LEVEL = frozenset(
    {
        "id",
        "jobspec_id",
        "version",
        "benchmark",
        "constraints",
        "metadata",
        "created_at",
        "questions",
        "models",
        "runs",
        "wallet_auth",
        "signature",
        "public_key",
    }
)
"""The top-level fields of the original runner's JobSpec struct: all a legacy signer could emit."""


def _without(document: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    excluded = set(keys)
    return {k: v for k, v in document.items() if k not in excluded}


def _is_prunable_scalar(value: Any) -> bool:
    if value is None or value == "":
        return True
    # bool is an int in Python, but Go's and JavaScript's false is not the number 0.
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def portal_v1_prune(value: dict[str, Any]) -> dict[str, Any]:
    """Drop null, "", 0 and objects empty after cleaning, through nested objects (not arrays)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            item = portal_v1_prune(item)
            if not item:
                continue
        elif _is_prunable_scalar(item):
            continue
        out[key] = item
    return out


def prunable_paths(document: dict[str, Any]) -> list[str]:
    """Dotted paths of the values portal-v1 would leave unsigned (ignoring the fields it excludes).

    Reports the leaves: a null/""/0 value, or an object that is empty as given.
    """
    paths: list[str] = []

    def walk(value: dict[str, Any], prefix: str) -> None:
        for key, item in value.items():
            path = f"{prefix}{key}"
            if isinstance(item, dict):
                if item:
                    walk(item, path + ".")
                else:
                    paths.append(path)
            elif _is_prunable_scalar(item):
                paths.append(path)

    walk(_without(document, PORTAL_V1_EXCLUDED), "")
    return paths


def legacy_shape_problem(document: dict[str, Any]) -> str | None:
    """Why ``document`` cannot have come from the original runner's tools, or None if it could.

    Their JobSpec was a Go struct: ``benchmark`` an object, and no field the struct did not have
    (Beacon's Day-1 minimal form, ``"benchmark": "noop"`` with a top-level ``container``, is not one).
    """
    if not isinstance(document.get("benchmark"), dict):
        return "benchmark is not an object"
    extra = sorted(set(document) - LEGACY_TOP_LEVEL)
    if extra:
        return f"fields the original runner's JobSpec did not have: {', '.join(extra)}"
    return None


def signing_message(document: dict[str, Any], scheme: Scheme = Scheme.JCS) -> bytes:
    """The bytes ``scheme`` signs for ``document``; CanonicalizationError if it has no such form.

    The one definition of each scheme's message: Beacon's own (``jcs``) is ``JOBSPEC_CONTEXT``
    followed by the RFC 8785 bytes of the document minus ``signature`` and ``public_key``.
    """
    if scheme is Scheme.JCS:
        return JOBSPEC_CONTEXT + jcs(_without(document, SIGNATURE_FIELDS))
    if scheme is Scheme.GO_STRIP:
        return go_canonical(_without(document, SIGNATURE_FIELDS))
    return go_canonical(portal_v1_prune(_without(document, PORTAL_V1_EXCLUDED)))


def sign_jobspec(document: dict[str, Any], key: Ed25519Key, scheme: Scheme = Scheme.JCS) -> dict[str, Any]:
    """A copy of ``document`` with ``public_key`` and ``signature`` set under ``scheme``.

    Refuses (ValueError) to sign under a legacy scheme a document the runner would refuse.
    """
    body = _without(document, SIGNATURE_FIELDS)
    if scheme is not Scheme.JCS and (problem := legacy_shape_problem(body)):
        raise ValueError(f"{scheme} is only for documents in the original runner's shape: {problem}")
    if scheme is Scheme.PORTAL_V1 and (paths := prunable_paths(body)):
        raise ValueError(f"portal-v1 would leave these fields unsigned: {', '.join(paths)}")
    return {
        **body,
        "public_key": key.public_key_b64,
        "signature": key.sign_b64(signing_message(body, scheme)),
    }


@dataclass(frozen=True)
class Verification:
    """A signature that verified: under which scheme, by which key, and what it left unsigned."""

    scheme: Scheme
    public_key: bytes
    unsigned_fields: tuple[str, ...] = field(default=())

    @property
    def public_key_b64(self) -> str:
        return b64encode(self.public_key)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def _decode_fields(document: dict[str, Any]) -> tuple[VerifyKey, bytes, bytes]:
    signature = document.get("signature")
    public_key = document.get("public_key")
    if signature in (None, "") or public_key in (None, ""):
        missing = [
            name for name, v in (("signature", signature), ("public_key", public_key)) if v in (None, "")
        ]
        raise IntakeError(
            "signature_missing",
            "sign the JobSpec (e.g. `beacon sign -k key.json -i job.json -o job.signed.json`); "
            f"missing: {', '.join(missing)}",
            errors=[{"path": name, "message": "required", "type": "missing"} for name in missing],
        )
    if not isinstance(public_key, str):
        raise IntakeError("invalid_public_key", "public_key must be a base64 string")
    if not isinstance(signature, str):
        raise IntakeError("invalid_signature_encoding", "signature must be a base64 string")
    try:
        raw_key = decode_public_key(public_key)
    except ValueError as exc:
        raise IntakeError("invalid_public_key", f"public_key: {exc}") from None
    try:
        raw_sig = b64decode(signature)
    except ValueError:
        raise IntakeError("invalid_signature_encoding", "signature is not base64") from None
    if len(raw_sig) != 64:
        raise IntakeError(
            "invalid_signature_encoding", f"an Ed25519 signature has 64 bytes, this one has {len(raw_sig)}"
        )
    try:
        verify_key = VerifyKey(raw_key)
    except Exception:  # PyNaCl raises a few types for keys that are not curve points
        raise IntakeError("invalid_public_key", "public_key is not a valid Ed25519 key") from None
    return verify_key, raw_key, raw_sig


def verify_jobspec(
    document: dict[str, Any],
    *,
    accept_go_strip: bool = True,
    accept_portal_v1: bool = True,
) -> Verification:
    """Verify the signature of a parsed JobSpec under the accepted schemes, primary first.

    A legacy scheme is tried only for a document in the original runner's shape.

    Raises IntakeError: ``signature_missing``, ``invalid_public_key``, ``invalid_signature_encoding``,
    ``signature_mismatch`` or ``unsigned_fields``.
    """
    verify_key, raw_key, raw_sig = _decode_fields(document)
    schemes = [Scheme.JCS]
    if accept_go_strip:
        schemes.append(Scheme.GO_STRIP)
    if accept_portal_v1:
        schemes.append(Scheme.PORTAL_V1)
    problems: list[str] = []
    tried: list[str] = []
    shape_problem = legacy_shape_problem(document)
    for scheme in schemes:
        if scheme is not Scheme.JCS and shape_problem is not None:
            problems.append(f"{scheme} not tried: {shape_problem}")
            continue
        tried.append(str(scheme))
        try:
            message = signing_message(document, scheme)
        except CanonicalizationError as exc:
            problems.append(f"{scheme}: {exc}")
            continue
        try:
            verify_key.verify(message, raw_sig)
        except BadSignatureError:
            continue
        if scheme is Scheme.PORTAL_V1:
            paths = prunable_paths(document)
            if paths:
                raise IntakeError(
                    "unsigned_fields",
                    "the signature is a portal-v1 signature, which does not cover null, empty or zero "
                    f"values; remove them or sign with the jcs scheme: {', '.join(paths)}",
                    errors=[
                        {"path": p, "message": "not covered by the signature", "type": "unsigned"}
                        for p in paths
                    ],
                )
            unsigned = tuple(name for name in ("id", "created_at") if name in document)
            return Verification(scheme, raw_key, unsigned)
        return Verification(scheme, raw_key)
    detail = f"the signature does not verify under any accepted scheme ({', '.join(tried)})"
    if problems:
        detail += "; " + "; ".join(problems)
    raise IntakeError("signature_mismatch", detail, schemes_tried=tried)
