"""``Idempotency-Key`` (IETF httpapi draft): one key, one request, one stored response.

* first use: the key is claimed (``in_flight``) in a short transaction of its own, so concurrent
  copies of the request see the claim at once;
* the transaction that creates the job also stores the response (``done``);
* same key + same body later: the stored response is replayed; same key + different body: 422;
  same key while the first is still running: 409;
* a request that fails releases its claim (nothing was written), so the client may retry;
* a claim whose owner died (older than ``lock_s``) is taken over by the next retry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.intake.errors import IntakeError
from beacon.store import Database
from beacon.store.tables import idempotency_keys

MAX_KEY_LENGTH = 255


def parse_idempotency_key(header: str | None) -> str | None:
    """The key from the header (a bare token or an RFC 8941 string); IntakeError if malformed."""
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all(0x20 < ord(ch) < 0x7F for ch in key):
        raise IntakeError(
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} visible ASCII characters",
        )
    return key


def fingerprint(body: bytes) -> str:
    """The request fingerprint the key is bound to: SHA-256 of the body bytes."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Claim:
    """This request owns ``key`` until it completes or releases it."""

    key: str
    fingerprint: str
    token: float
    """The claim's ``created_at``: completing or releasing checks that the claim is still ours."""


async def claim(
    db: Database, key: str, request_fingerprint: str, *, now: float, ttl_s: float, lock_s: float
) -> Claim | StoredResponse:
    """Claim ``key`` for this request, or return the response to replay. IntakeError 422/409."""
    insert = db.insert(idempotency_keys).values(
        key=key,
        fingerprint=request_fingerprint,
        state="in_flight",
        job_id=None,
        response_status=None,
        response_body=None,
        response_headers=None,
        created_at=now,
        expires_at=now + ttl_s,
    )
    excluded = insert.excluded
    table = idempotency_keys.c
    statement = insert.on_conflict_do_update(
        index_elements=[table.key],
        set_={
            "fingerprint": excluded.fingerprint,
            "state": excluded.state,
            "job_id": None,
            "response_status": None,
            "response_body": None,
            "response_headers": None,
            "created_at": excluded.created_at,
            "expires_at": excluded.expires_at,
        },
        where=sa.or_(
            table.expires_at < now,
            sa.and_(
                table.state == "in_flight",
                table.created_at < now - lock_s,
                table.fingerprint == request_fingerprint,
            ),
        ),
    )
    async with db.begin() as conn:
        if (await conn.execute(statement)).rowcount == 1:
            return Claim(key, request_fingerprint, now)
        row = (await conn.execute(sa.select(idempotency_keys).where(table.key == key))).first()
    if row is None:  # released between our two statements: the client may simply retry
        raise IntakeError(
            "idempotency_in_flight", "a request with this Idempotency-Key just finished; retry", status=409
        )
    if row.fingerprint != request_fingerprint:
        raise IntakeError(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body; use a new key for a new request",
            status=422,
        )
    if row.state != "done" or row.response_status is None:
        raise IntakeError(
            "idempotency_in_flight",
            "a request with this Idempotency-Key is still being processed; retry shortly",
            status=409,
            headers={"Retry-After": "1"},
        )
    return StoredResponse(row.response_status, bytes(row.response_body), dict(row.response_headers or {}))


COMPLETE = (
    sa.update(idempotency_keys)
    .where(
        idempotency_keys.c.key == sa.bindparam("b_key"),
        idempotency_keys.c.fingerprint == sa.bindparam("b_fingerprint"),
    )
    .values(
        state="done",
        job_id=sa.bindparam("b_job_id"),
        response_status=sa.bindparam("b_status"),
        response_body=sa.bindparam("b_body"),
        response_headers=sa.bindparam("b_headers"),
    )
)
"""Store the response under a key; execute (inside the submission transaction) with :func:`completion`.

Matched by key and fingerprint, not by claim: if a stale claim was taken over, the other request
carried the same body, hence the same nonce, so at most one of the two can have created the job.
"""


def completion(owned: Claim, *, job_id: str, response: StoredResponse) -> dict[str, object]:
    """The parameters of :data:`COMPLETE` for one request."""
    return {
        "b_key": owned.key,
        "b_fingerprint": owned.fingerprint,
        "b_job_id": job_id,
        "b_status": response.status,
        "b_body": response.body,
        "b_headers": response.headers,
    }


async def release(db: Database, owned: Claim) -> None:
    """Give the key back after a failed request (nothing was stored under it)."""
    table = idempotency_keys.c
    async with db.begin() as conn:
        await conn.execute(
            sa.delete(idempotency_keys).where(
                table.key == owned.key, table.state == "in_flight", table.created_at == owned.token
            )
        )


async def purge_expired(conn: AsyncConnection, *, now: float) -> int:
    result = await conn.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.expires_at < now))
    return int(result.rowcount or 0)
