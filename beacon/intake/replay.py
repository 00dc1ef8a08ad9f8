"""Replay protection: a fresh ``metadata.timestamp`` and a ``metadata.nonce`` used once per key.

The nonce row is written in the submission's own transaction, so a job is accepted if and only if
its nonce was new: two copies of one signed document racing each other cannot both get in, and a
refused submission leaves no nonce behind. A nonce is remembered until its timestamp leaves the
acceptance window; after that the timestamp check alone refuses the document.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.intake.errors import IntakeError
from beacon.store import Database
from beacon.store.tables import nonces

MAX_NONCE_LENGTH = 255


@dataclass(frozen=True)
class Freshness:
    timestamp: float
    """``metadata.timestamp`` as epoch seconds."""
    nonce: str
    expires_at: float
    """When the nonce may be forgotten: the timestamp is too old to be accepted after this."""


def _parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise IntakeError("timestamp_invalid", "metadata.timestamp must be an RFC 3339 time string")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        raise IntakeError(
            "timestamp_invalid", f"metadata.timestamp {value!r} is not an RFC 3339 time"
        ) from None
    if parsed.tzinfo is None:
        raise IntakeError("timestamp_invalid", "metadata.timestamp needs a time zone (e.g. a trailing Z)")
    return parsed.astimezone(UTC)


def check_freshness(
    document: dict[str, Any], *, now: float, max_skew_s: float, max_age_s: float
) -> Freshness:
    """The document's timestamp and nonce, or IntakeError if either is missing, malformed or stale."""
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    if "timestamp" not in metadata or metadata["timestamp"] in (None, ""):
        raise IntakeError(
            "timestamp_missing",
            "metadata.timestamp is required (`beacon sign` adds it)",
            errors=[{"path": "metadata.timestamp", "message": "required", "type": "missing"}],
        )
    timestamp = _parse_timestamp(metadata["timestamp"]).timestamp()
    if timestamp > now + max_skew_s:
        raise IntakeError(
            "timestamp_in_future",
            f"metadata.timestamp is {timestamp - now:.0f}s ahead of the runner's clock (allowed skew {max_skew_s:.0f}s)",
            reason="too_far_in_future",
        )
    if now - timestamp > max_age_s:
        raise IntakeError(
            "timestamp_too_old",
            f"metadata.timestamp is {now - timestamp:.0f}s old (maximum {max_age_s:.0f}s); sign the JobSpec again",
            reason="too_old",
        )
    nonce = metadata.get("nonce")
    if nonce in (None, ""):
        raise IntakeError(
            "nonce_missing",
            "metadata.nonce is required (`beacon sign` adds it)",
            errors=[{"path": "metadata.nonce", "message": "required", "type": "missing"}],
        )
    if not isinstance(nonce, str) or len(nonce) > MAX_NONCE_LENGTH or not nonce.isprintable():
        raise IntakeError(
            "nonce_invalid",
            f"metadata.nonce must be a printable string of at most {MAX_NONCE_LENGTH} characters",
        )
    return Freshness(timestamp, nonce, timestamp + max_age_s + max_skew_s)


def nonce_claim(db: Database, *, now: float) -> Any:
    """INSERT … RETURNING for nonce rows: a row comes back for each nonce claimed (new, or expired and
    taken over); a nonce still in its window returns nothing. Execute with one or many rows."""
    statement = db.insert(nonces)
    return statement.on_conflict_do_update(
        index_elements=[nonces.c.public_key, nonces.c.nonce],
        set_={"expires_at": statement.excluded.expires_at},
        where=nonces.c.expires_at < now,
    ).returning(nonces.c.public_key, nonces.c.nonce)


def replay_detected() -> IntakeError:
    return IntakeError(
        "replay_detected", "this key already used metadata.nonce for an accepted JobSpec; sign a new document"
    )


async def purge_expired_nonces(conn: AsyncConnection, *, now: float) -> int:
    """Forget nonces whose documents can no longer pass the timestamp check."""
    result = await conn.execute(sa.delete(nonces).where(nonces.c.expires_at < now))
    return int(result.rowcount or 0)


def stamp(document: dict[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
    """A copy of ``document`` with ``metadata.timestamp`` (UTC, seconds) and a random ``metadata.nonce``
    added where missing: what a signer does right before signing."""
    metadata = document.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    if not metadata.get("timestamp"):
        metadata["timestamp"] = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not metadata.get("nonce"):
        metadata["nonce"] = secrets.token_hex(16)
    return {**document, "metadata": metadata}
