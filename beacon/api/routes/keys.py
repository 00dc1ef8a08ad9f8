"""``GET /api/v1/keys``: the public keys that sign this runner's receipts (and its other documents).

The runner's own key comes first (``current``); every other key that signed receipts here — a
worker host started with its own ``BEACON_RUNNER_KEY_FILE`` — stays listed after its workers are
gone, so old receipts remain verifiable. Verify a receipt offline with
``beacon verify-receipt FILE --runner-key <public_key>``.

``GET /api/v1/keys/trust?public_key=…`` says whether this runner would accept JobSpecs signed by a
key (TRUSTED_KEYS and the admin config's ``security.allowed_submitter_keys``), as intake decides it:
the portal shows it beside its signing key.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from beacon.api.deps import get_runtime
from beacon.api.openapi import problem_responses
from beacon.api.params import PUBLIC_KEY_PATTERN
from beacon.api.problems import Problem
from beacon.clock import iso_time
from beacon.intake import IntakeError, evaluate_trust
from beacon.keys import decode_public_key, key_id
from beacon.runtime import Runtime
from beacon.store.tables import runner_keys

router = APIRouter(tags=["keys"])


class RunnerKey(BaseModel):
    kid: str = Field(description="Hex of the first 8 bytes of SHA-256 of the public key")
    algorithm: str = "ed25519"
    public_key: str = Field(description="Standard base64 of the 32-byte Ed25519 public key")
    current: bool = Field(description="The key this API process signs with")
    first_seen_at: str | None
    last_seen_at: str | None


class RunnerKeys(BaseModel):
    keys: list[RunnerKey]


def _key(kid: str, public_key: str, row: Any, *, current: bool) -> dict[str, Any]:
    return {
        "kid": kid,
        "algorithm": "ed25519",
        "public_key": public_key,
        "current": current,
        "first_seen_at": iso_time(row.first_seen_at) if row is not None else None,
        "last_seen_at": iso_time(row.last_seen_at) if row is not None else None,
    }


@router.get("/api/v1/keys", summary="Public keys that sign receipts", response_model=RunnerKeys)
async def keys(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    current = runtime.runner_key
    async with runtime.db.connect() as conn:
        rows = (await conn.execute(sa.select(runner_keys).order_by(runner_keys.c.first_seen_at))).all()
    own = next((row for row in rows if row.kid == current.kid), None)
    listed = [_key(current.kid, current.public_key_b64, own, current=True)]
    listed += [_key(row.kid, row.public_key, row, current=False) for row in rows if row.kid != current.kid]
    return {"keys": listed}


class KeyTrust(BaseModel):
    public_key: str
    kid: str = Field(description="The trusted-key entry's kid, or the key's fingerprint when unlisted")
    status: str = Field(description="trusted | unknown | revoked | expired | not_yet_valid")
    submit_allowed: bool = Field(description="Whether a JobSpec signed by this key passes the trust step now")
    code: str | None = Field(
        description="The refusal code intake would answer (key_unknown, key_not_allowed, …)"
    )
    reason: str | None


@router.get(
    "/api/v1/keys/trust",
    summary="Whether JobSpecs signed by a key would pass this runner's trust step",
    response_model=KeyTrust,
    responses=problem_responses(400),
)
async def key_trust(
    public_key: Annotated[
        str,
        Query(max_length=128, pattern=PUBLIC_KEY_PATTERN, description="Standard base64 Ed25519 public key"),
    ],
    runtime: Runtime = Depends(get_runtime),
) -> dict[str, Any]:

    try:
        raw = decode_public_key(public_key)
    except ValueError as exc:
        raise Problem(
            400,
            "invalid_public_key",
            "Not an Ed25519 public key",
            str(exc),
            errors=[{"path": "public_key", "message": str(exc), "type": "value_error"}],
        ) from exc
    config = (await runtime.admin_config.current()).config
    status, entry = runtime.trusted_keys.status(raw)
    answer: dict[str, Any] = {
        "public_key": public_key,
        "kid": entry.kid if entry else key_id(raw),
        "status": str(status),
        "submit_allowed": True,
        "code": None,
        "reason": None,
    }
    try:
        evaluate_trust(
            runtime.trusted_keys,
            raw,
            require_trusted=runtime.settings.require_trusted_key,
            allowed_submitters=config.security.allowed_submitter_keys,
        )
    except IntakeError as exc:
        answer.update(submit_allowed=False, code=exc.code, reason=str(exc.detail))
    return answer
