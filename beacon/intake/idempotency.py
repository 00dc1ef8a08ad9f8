"""``Idempotency-Key`` (IETF httpapi draft): one key, one request, one stored response.

* first use: the key is claimed (``in_flight``) in a short transaction of its own (shared with the
  claims that arrive at the same moment: beacon.intake.batching), so concurrent
  copies of the request see the claim at once;
* the transaction that creates the job also stores the response (``done``);
* same key + same body later: the stored response is replayed; same key + different body: 422;
  same key while the first is still running: 409;
* a request that fails releases its claim (nothing was written), so the client may retry;
* a claim whose owner died (older than ``lock_s``) is taken over by the next retry.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.intake.batching import Batcher
from beacon.intake.errors import IntakeError
from beacon.store import Database, now
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
    """What the key is bound to: the hex SHA-256 of the request body."""
    token: float
    """The claim's ``created_at``: completing or releasing checks that the claim is still ours."""


async def _no_flush_wait(db: Database, conn: AsyncConnection) -> None:
    """Commit a claim or release without waiting for the WAL flush (PostgreSQL).

    Safe because a claim only matters together with the job transaction that completes it, which
    commits synchronously: PostgreSQL flushes the WAL in order, so a durable completion implies a
    durable claim, and a claim lost in a crash had nothing durable after it (the retry then runs as a
    fresh request, and the nonce still admits at most one job).
    """
    if db.is_postgres:
        await conn.execute(sa.text("SET LOCAL synchronous_commit = off"))


@dataclass(frozen=True)
class _ClaimRequest:
    key: str
    fingerprint: str


def _in_flight() -> IntakeError:
    return IntakeError(
        "idempotency_in_flight",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        status=409,
        headers={"Retry-After": "1"},
    )


def _reused() -> IntakeError:
    return IntakeError(
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request body; use a new key for a new request",
        status=422,
    )


class IdempotencyClaims:
    """Claims keys for requests, batching concurrent claims into one transaction (beacon.intake.batching)."""

    def __init__(self, db: Database, *, ttl_s: float, lock_s: float, max_batch: int = 200) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.lock_s = lock_s
        self._batcher: Batcher[_ClaimRequest, Claim | StoredResponse] = Batcher(
            self._flush, max_batch=max_batch, name="beacon-idempotency-claims"
        )

    async def claim(self, key: str, request_fingerprint: str) -> Claim | StoredResponse:
        """Claim ``key`` for this request (``request_fingerprint``: hex SHA-256 of its body), or return the
        response to replay. IntakeError 422/409."""
        return await self._batcher.submit(_ClaimRequest(key, request_fingerprint))

    async def _flush(self, requests: list[_ClaimRequest]) -> list[Claim | StoredResponse | BaseException]:
        outcomes: list[Claim | StoredResponse | BaseException | None] = [None] * len(requests)
        first: dict[str, _ClaimRequest] = {}
        for index, request in enumerate(requests):  # the same key twice in one batch: the first claims it
            earlier = first.get(request.key)
            if earlier is None:
                first[request.key] = request
            else:
                outcomes[index] = _in_flight() if earlier.fingerprint == request.fingerprint else _reused()
        live = [i for i, outcome in enumerate(outcomes) if outcome is None]
        at = now()
        table = idempotency_keys.c
        insert = self.db.insert(idempotency_keys)
        upsert = insert.on_conflict_do_update(
            index_elements=[table.key],
            set_={
                "fingerprint": insert.excluded.fingerprint,
                "state": insert.excluded.state,
                "job_id": None,
                "response_status": None,
                "response_body": None,
                "response_headers": None,
                "created_at": insert.excluded.created_at,
                "expires_at": insert.excluded.expires_at,
            },
            # an expired key is free; a claim whose request died may be taken by the same body
            where=sa.or_(
                table.expires_at < at,
                sa.and_(
                    table.state == "in_flight",
                    table.created_at < at - self.lock_s,
                    table.fingerprint == insert.excluded.fingerprint,
                ),
            ),
        ).returning(table.key)
        async with self.db.begin() as conn:
            await _no_flush_wait(self.db, conn)
            claimed = {
                row.key
                for row in await conn.execute(
                    upsert,
                    [
                        {
                            "key": requests[i].key,
                            "fingerprint": requests[i].fingerprint,
                            "state": "in_flight",
                            "created_at": at,
                            "expires_at": at + self.ttl_s,
                        }
                        for i in live
                    ],
                )
            }
            taken = [requests[i].key for i in live if requests[i].key not in claimed]
            existing = (
                {
                    row.key: row
                    for row in await conn.execute(sa.select(idempotency_keys).where(table.key.in_(taken)))
                }
                if taken
                else {}
            )
        for i in live:
            request = requests[i]
            if request.key in claimed:
                outcomes[i] = Claim(request.key, request.fingerprint, at)
                continue
            row = existing.get(request.key)
            if row is None:  # released between the two statements: the client may simply retry
                outcomes[i] = _in_flight()
            elif row.fingerprint != request.fingerprint:
                outcomes[i] = _reused()
            elif row.state != "done" or row.response_status is None:
                outcomes[i] = _in_flight()
            else:
                outcomes[i] = StoredResponse(
                    row.response_status, bytes(row.response_body), dict(row.response_headers or {})
                )
        resolved: list[Claim | StoredResponse | BaseException] = []
        for outcome in outcomes:
            assert outcome is not None  # every request was answered above
            resolved.append(outcome)
        return resolved

    async def release(self, owned: Claim) -> None:
        """Give the key back after a failed request (nothing was stored under it)."""
        table = idempotency_keys.c
        async with self.db.begin() as conn:
            await _no_flush_wait(self.db, conn)
            await conn.execute(
                sa.delete(idempotency_keys).where(
                    table.key == owned.key, table.state == "in_flight", table.created_at == owned.token
                )
            )

    async def aclose(self) -> None:
        await self._batcher.aclose()


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


async def purge_expired(conn: AsyncConnection, *, now: float) -> int:
    result = await conn.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.expires_at < now))
    return int(result.rowcount or 0)
