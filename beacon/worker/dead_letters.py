"""Dead letters: the ``dead_letters`` table is their only record (decision 0021).

The worker writes them in its finish transaction (:func:`beacon.worker.claims.insert_dead_letters`)
and the relay for an outbox row that is no message; the queue only acknowledges their messages.
Operators count, requeue and purge them here; the ops API and ``beacon ops`` call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon import audit
from beacon.queue.message import Message, MessageError, outbox_row
from beacon.store import now
from beacon.store.db import Database
from beacon.store.tables import dead_letters, executions, outbox
from beacon.worker.lifecycle import EXECUTION_TERMINAL


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operator names: these ids, every one of a region, or both narrowed."""

    ids: Sequence[int] | None = None
    region: str | None = None

    def filters(self) -> list[Any]:
        found: list[Any] = []
        if self.ids is not None:
            found.append(dead_letters.c.id.in_(list(self.ids)))
        if self.region is not None:
            found.append(dead_letters.c.region == self.region)
        return found


@dataclass
class Requeued:
    requeued: list[int] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    """``{"id", "reason"}`` of each dead letter not requeued, with why."""


async def waiting_by_region(conn: AsyncConnection) -> dict[str, int]:
    """Region → how many of its dead letters are not requeued yet."""
    rows = await conn.execute(
        sa.select(dead_letters.c.region, sa.func.count().label("n"))
        .where(dead_letters.c.requeued_at.is_(None))
        .group_by(dead_letters.c.region)
    )
    return {row.region: int(row.n) for row in rows}


async def requeue(db: Database, selection: Selection, *, actor: str, request_id: str | None) -> Requeued:
    """Publish again (an outbox row each) what can still run, in one audited transaction.

    A dead letter whose execution has ended (failed, with its receipt) is skipped — terminal is
    final; submit the job again instead — as is one that is no message or names no execution.
    """
    at = now()
    outcome = Requeued()
    async with db.begin() as conn:
        rows = (
            await conn.execute(
                sa.select(dead_letters)
                .where(*selection.filters(), dead_letters.c.requeued_at.is_(None))
                .order_by(dead_letters.c.id)
            )
        ).all()
        messages: dict[int, Message] = {}
        for row in rows:
            try:
                messages[row.id] = Message.parse(row.payload)
            except MessageError as exc:
                outcome.skipped.append({"id": row.id, "reason": f"not a valid message: {exc}"})
        states = {
            r.id: r.status
            for r in await conn.execute(
                sa.select(executions.c.id, executions.c.status).where(
                    executions.c.id.in_([m.execution_id for m in messages.values()])
                )
            )
        }
        outbox_rows = []
        for dead_id, message in messages.items():
            state = states.get(message.execution_id)
            if state is None:
                outcome.skipped.append(
                    {"id": dead_id, "reason": f"execution {message.execution_id} does not exist"}
                )
            elif state in EXECUTION_TERMINAL:
                outcome.skipped.append(
                    {
                        "id": dead_id,
                        "reason": f"execution {message.execution_id} has ended ({state}); submit the job again to re-run it",
                    }
                )
            else:
                outcome.requeued.append(dead_id)
                again = Message(
                    message.execution_id, message.job_id, message.region, enqueued_at=at, reason="requeue"
                )
                outbox_rows.append(outbox_row(again))
        if outbox_rows:
            await conn.execute(outbox.insert(), outbox_rows)
        if outcome.requeued:
            await conn.execute(
                dead_letters.update().where(dead_letters.c.id.in_(outcome.requeued)).values(requeued_at=at)
            )
        await audit.record(
            conn,
            actor=actor,
            action="ops.dead_letters.requeue",
            target="dead_letters",
            detail={"requeued": outcome.requeued, "skipped": [s["id"] for s in outcome.skipped]},
            request_id=request_id,
            at=at,
        )
    return outcome


async def purge(db: Database, selection: Selection, *, actor: str, request_id: str | None) -> int:
    """Forget the selected dead letters, in one audited transaction; how many there were."""
    async with db.begin() as conn:
        doomed = [
            row.id for row in await conn.execute(sa.select(dead_letters.c.id).where(*selection.filters()))
        ]
        if doomed:
            await conn.execute(dead_letters.delete().where(dead_letters.c.id.in_(doomed)))
        await audit.record(
            conn,
            actor=actor,
            action="ops.dead_letters.purge",
            target="dead_letters",
            detail={"ids": doomed},
            request_id=request_id,
        )
    return len(doomed)
