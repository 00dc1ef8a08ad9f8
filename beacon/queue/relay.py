"""The outbox relay: the only writer to the queue.

Intake commits a job, its executions and one outbox row per execution in one transaction; the relay
moves committed rows to the queue and marks them published. A crash between publishing and marking
publishes the rows again on the next pass: delivery is at-least-once and the worker's claim makes a
duplicate harmless (the execution is already running or finished).

* PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` — several relays (one per API replica) share the
  backlog without publishing a row twice at the same time.
* SQLite: every transaction is ``BEGIN IMMEDIATE``, so one relay at a time holds the write lock;
  a second relay waits, then sees the rows already marked.

A row whose payload is not a valid message is never published and never retried forever (the
original retried poison rows on every pass): it becomes a dead letter with the reason.

Publishing is observable: in the transaction that marks rows published, the relay writes one
``published`` event per job and region to ``job_events`` (its time is after the queue accepted the
messages; intake's ``created``/``enqueued`` share the intake transaction's time), so a job's
timeline shows when the relay moved it, and a relay that never publishes shows as a gap.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.failpoints import failpoint
from beacon.outage import Backoff, is_outage
from beacon.queue.base import Queue
from beacon.queue.message import Message, MessageError
from beacon.store import Database, now
from beacon.store.tables import dead_letters, job_events, jobs, outbox

log = logging.getLogger("beacon.relay")

PUBLISHED_EVENT = "published"
"""The ``job_events`` status the relay writes (not a job state: the job stays ``enqueued``)."""

PUBLISHED_RETENTION_S = 7 * 86400.0
"""Published outbox rows are kept this long for forensics, then pruned by the sweeper."""


@dataclass(frozen=True)
class RelayLag:
    unpublished: int
    oldest_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"unpublished": self.unpublished, "oldest_age_s": self.oldest_age_s}


class OutboxRelay:
    def __init__(self, db: Database, queue: Queue, *, batch: int = 500) -> None:
        self.db = db
        self.queue = queue
        self.batch = batch
        self.published = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Publish now instead of at the next poll (someone in this process wrote outbox rows)."""
        self._wake.set()

    async def publish_batch(self) -> int:
        """Move up to ``batch`` committed rows to the queue; return how many rows were handled."""
        await failpoint("relay.before_publish")  # fault tests: a relay that never publishes
        async with self.db.begin() as conn:
            query = (
                sa.select(outbox.c.id, outbox.c.topic, outbox.c.payload)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = (await conn.execute(query)).all()
            if not rows:
                return 0
            by_topic: dict[str, list[Any]] = {}
            invalid: list[tuple[Any, str]] = []
            published: dict[tuple[str, str, str | None], int] = {}
            for row in rows:
                try:
                    message = Message.parse(row.payload)
                    if message.region != row.topic:
                        raise MessageError(
                            f"topic {row.topic!r} differs from payload region {message.region!r}"
                        )
                except MessageError as exc:
                    invalid.append((row, str(exc)))
                    continue
                by_topic.setdefault(row.topic, []).append(row.payload)
                key = (message.job_id, message.region, message.reason)
                published[key] = published.get(key, 0) + 1
            for topic, payloads in by_topic.items():
                await self.queue.publish(topic, payloads)
            await failpoint("relay.after_publish")
            at = now()
            await conn.execute(
                outbox.update().where(outbox.c.id.in_([row.id for row in rows])).values(published_at=at)
            )
            await _record_published(conn, published, at)
            if invalid:
                await conn.execute(
                    dead_letters.insert(),
                    [
                        {
                            "region": str(row.topic)[:16],
                            "message_id": f"outbox:{row.id}",
                            "payload": row.payload,
                            "reason": f"invalid outbox payload: {reason}",
                            "attempts": 0,
                            "error_code": "invalid_message",
                            "created_at": at,
                        }
                        for row, reason in invalid
                    ],
                )
                for row, reason in invalid:
                    log.error("outbox row %s is not a valid message (%s): dead-lettered", row.id, reason)
        self.published += len(rows) - len(invalid)
        return len(rows)

    async def run(self, stop: asyncio.Event, *, idle_s: float = 0.25) -> None:
        """Publish until ``stop`` is set; poll quickly while busy, slower when idle, back off in outages."""
        backoff = Backoff(log=log)
        pause = 0.01
        while not stop.is_set():
            try:
                handled = await self.publish_batch()
                backoff.reset()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("relay pass failed")
                await backoff.wait("relay: database or queue", exc)
                continue
            if handled >= self.batch:
                continue
            pause = 0.005 if handled else min(idle_s, pause * 2)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=pause)
                pause = 0.005
            except TimeoutError:
                pass

    async def lag(self) -> RelayLag:
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(
                        outbox.c.published_at.is_(None)
                    )
                )
            ).one()
        count, oldest = int(row[0]), row[1]
        return RelayLag(count, max(0.0, now() - oldest) if oldest is not None else None)


async def _record_published(
    conn: AsyncConnection, published: dict[tuple[str, str, str | None], int], at: float
) -> None:
    """One ``published`` job event per (job, region, reason) of this pass, for jobs that exist."""
    if not published:
        return
    job_ids = sorted({job_id for job_id, _, _ in published})
    known = set((await conn.execute(sa.select(jobs.c.id).where(jobs.c.id.in_(job_ids)))).scalars())
    rows = [
        {
            "job_id": job_id,
            "status": PUBLISHED_EVENT,
            "at": at,
            "detail": {"region": region, "messages": count, "reason": reason},
        }
        for (job_id, region, reason), count in sorted(published.items(), key=lambda item: str(item[0]))
        if job_id in known
    ]
    if rows:
        await conn.execute(job_events.insert(), rows)


async def prune_published(
    db: Database, *, older_than_s: float = PUBLISHED_RETENTION_S, limit: int = 5000
) -> int:
    """Delete published outbox rows older than the retention; return how many went."""
    cutoff = now() - older_than_s
    async with db.begin() as conn:
        ids = sa.select(outbox.c.id).where(outbox.c.published_at < cutoff).order_by(outbox.c.id).limit(limit)
        result = await conn.execute(outbox.delete().where(outbox.c.id.in_(ids.scalar_subquery())))
    return int(result.rowcount or 0)
