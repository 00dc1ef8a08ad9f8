"""``GET /api/v1/keys``: the public keys that sign this runner's receipts (and its other documents).

The runner's own key comes first (``current``); every other key that signed receipts here — a
worker host started with its own ``BEACON_RUNNER_KEY_FILE`` — stays listed after its workers are
gone, so old receipts remain verifiable. Verify a receipt offline with
``beacon verify-receipt FILE --runner-key <public_key>``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from beacon.api.deps import get_runtime
from beacon.clock import iso_time
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
