"""The audit log of admin and operator actions (who, what, when, which request).

Write the entry in the same transaction as the action it records, so neither exists without the
other: ``await audit.record(conn, actor=principal.actor, action="queue.purge", ...)``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.clock import iso_time
from beacon.store import Database, now
from beacon.store.tables import audit_log


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
    at: float | None = None,
) -> None:
    """Append one entry inside the caller's transaction. ``actor`` is ``Principal.actor``, never a token."""
    await conn.execute(
        audit_log.insert().values(
            at=at if at is not None else now(),
            actor=actor,
            action=action,
            target=target,
            detail=detail,
            request_id=request_id,
        )
    )


async def entries(db: Database, *, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    """Entries newest first, ``at`` as RFC 3339; page with ``before`` = the last entry's id."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [{**dict(row), "at": iso_time(row["at"])} for row in rows]
