"""An offline verdict on a signed JobSpec: what ``beacon verify`` and ``jobspec-signer verify`` print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from beacon.errors import ExitCode
from beacon.intake.errors import IntakeError
from beacon.intake.signatures import verify_jobspec
from beacon.intake.trust import evaluate_trust
from beacon.keys import KeyStatus, TrustedKeys, b64encode, decode_public_key, key_id


@dataclass(frozen=True)
class Verdict:
    valid: bool
    """The signature verifies under one of the accepted schemes."""
    scheme: str | None
    public_key: str | None
    kid: str | None
    key_status: str
    """trusted | unknown | revoked | expired | not_yet_valid | not_allowed, or unchecked (no trusted keys given)."""
    reason: str | None = None
    """The refusal code when not valid or not trusted (as the API would answer)."""
    detail: str | None = None
    unsigned_fields: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """VERIFIED (and trusted, when trusted keys were given), NOT_VERIFIED (bad signature), UNTRUSTED."""
        if not self.valid:
            return ExitCode.NOT_VERIFIED
        if self.key_status not in ("trusted", "unchecked"):
            return ExitCode.UNTRUSTED
        return ExitCode.VERIFIED

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _claimed_key(document: dict[str, Any]) -> bytes | None:
    value = document.get("public_key")
    if not isinstance(value, str):
        return None
    try:
        return decode_public_key(value)
    except ValueError:
        return None


def check_document(
    document: dict[str, Any],
    trusted_keys: TrustedKeys | None = None,
    *,
    accept_go_strip: bool = True,
    accept_portal_v1: bool = True,
    now: datetime | None = None,
) -> Verdict:
    """Verify the signature and, if ``trusted_keys`` is given, the key's trust; never raises for bad input."""
    claimed = _claimed_key(document)
    public_key = b64encode(claimed) if claimed else None
    try:
        verification = verify_jobspec(
            document, accept_go_strip=accept_go_strip, accept_portal_v1=accept_portal_v1
        )
    except IntakeError as exc:
        kid = key_id(claimed) if claimed else None
        if claimed and trusted_keys is not None:
            entry = trusted_keys.lookup(claimed)
            kid = entry.kid if entry else kid
        return Verdict(False, None, public_key, kid, "unchecked", exc.code, exc.detail)
    unsigned = list(verification.unsigned_fields)
    if trusted_keys is None:
        return Verdict(
            True,
            str(verification.scheme),
            verification.public_key_b64,
            verification.key_id,
            "unchecked",
            None,
            None,
            unsigned,
        )
    try:
        decision = evaluate_trust(trusted_keys, verification.public_key, now=now)
    except IntakeError as exc:
        status = str(exc.extensions.get("key_status", KeyStatus.UNKNOWN))
        kid = str(exc.extensions.get("kid", verification.key_id))
        return Verdict(
            True,
            str(verification.scheme),
            verification.public_key_b64,
            kid,
            status,
            exc.code,
            exc.detail,
            unsigned,
        )
    return Verdict(
        True,
        str(verification.scheme),
        verification.public_key_b64,
        decision.kid,
        str(decision.status),
        None,
        None,
        unsigned,
    )
