"""The one error type of intake: a refusal with a stable code, an HTTP status and the paths at fault."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class IntakeError(Exception):
    """A submission was refused. ``code`` is stable (it becomes the problem's ``code``)."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int = 400,
        title: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.title = title or _TITLES.get(code, "The JobSpec was refused")
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extensions = extensions


_TITLES = {
    "invalid_json": "The body is not JSON",
    "invalid_body": "The body is not a JSON object",
    "duplicate_key": "The JSON object repeats a key",
    "signature_missing": "The JobSpec is not signed",
    "invalid_public_key": "The public key is not an Ed25519 key",
    "invalid_signature_encoding": "The signature is not a base64 Ed25519 signature",
    "signature_mismatch": "The signature does not match the JobSpec",
    "unsigned_fields": "The JobSpec carries fields its signature does not cover",
    "key_unknown": "The signing key is not trusted",
    "key_revoked": "The signing key was revoked",
    "key_expired": "The signing key has expired",
    "key_not_yet_valid": "The signing key is not valid yet",
    "key_not_allowed": "The signing key may not submit jobs",
    "timestamp_missing": "metadata.timestamp is missing",
    "timestamp_invalid": "metadata.timestamp is not an RFC 3339 time",
    "timestamp_too_old": "metadata.timestamp is too old",
    "timestamp_in_future": "metadata.timestamp is in the future",
    "nonce_missing": "metadata.nonce is missing",
    "nonce_invalid": "metadata.nonce is not valid",
    "replay_detected": "This signed JobSpec was submitted before",
    "unknown_fields": "The JobSpec has fields the runner does not understand",
    "unknown_region": "The JobSpec names an unknown region",
    "invalid_jobspec": "The JobSpec is not valid",
    "too_many_executions": "The job plans too many executions",
    "exceeds_max_cost": "The job's max_cost exceeds the runner's limit",
    "exceeds_max_duration": "The job's timeout exceeds the runner's limit",
    "job_exists": "A job with this id exists",
    "invalid_idempotency_key": "The Idempotency-Key header is not valid",
    "idempotency_key_reused": "The Idempotency-Key was used with a different request",
    "idempotency_in_flight": "A request with this Idempotency-Key is still being processed",
    "submissions_paused": "Submissions are paused",
}
