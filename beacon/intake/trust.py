"""Trusted-key evaluation: is this signing key allowed to submit jobs right now?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from beacon.intake.errors import IntakeError
from beacon.keys import KeyStatus, TrustedKeys, b64encode, key_id

_REFUSALS: dict[KeyStatus, tuple[str, str]] = {
    KeyStatus.UNKNOWN: ("key_unknown", "the signing key is not in TRUSTED_KEYS"),
    KeyStatus.REVOKED: ("key_revoked", "the signing key is marked revoked in TRUSTED_KEYS"),
    KeyStatus.EXPIRED: ("key_expired", "the signing key's not_after has passed"),
    KeyStatus.NOT_YET_VALID: ("key_not_yet_valid", "the signing key's not_before has not been reached"),
}


@dataclass(frozen=True)
class TrustDecision:
    status: KeyStatus
    kid: str
    """The trusted-key entry's kid, or a fingerprint (``beacon.keys.key_id``) for an unlisted key."""


def evaluate_trust(
    trusted_keys: TrustedKeys,
    public_key: bytes,
    *,
    require_trusted: bool = True,
    allowed_submitters: Sequence[str] = (),
    now: datetime | None = None,
) -> TrustDecision:
    """Admit ``public_key`` or raise IntakeError with a code per reason.

    Unknown keys are refused only when ``require_trusted`` is set; revoked, expired and
    not-yet-valid entries are always refused. ``allowed_submitters`` (kids or base64 keys, from the
    admin config) narrows the admitted keys further when it is not empty.
    """
    status, entry = trusted_keys.status(public_key, now or datetime.now(UTC))
    kid = entry.kid if entry else key_id(public_key)
    if status is not KeyStatus.TRUSTED and (require_trusted or status is not KeyStatus.UNKNOWN):
        code, detail = _REFUSALS[status]
        raise IntakeError(code, f"{detail} (kid {kid})", kid=kid, key_status=str(status))
    if (
        allowed_submitters
        and kid not in allowed_submitters
        and b64encode(public_key) not in allowed_submitters
    ):
        raise IntakeError(
            "key_not_allowed",
            f"the admin config limits submissions to security.allowed_submitter_keys; kid {kid} is not listed",
            kid=kid,
        )
    return TrustDecision(status, kid)
