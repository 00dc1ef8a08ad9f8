"""Worker heartbeats in the ``workers`` table: who is alive, what each runs, drain requests.

A worker writes its row at start and refreshes ``heartbeat_at`` every ``BEACON_HEARTBEAT_SECONDS``;
a worker is *live* while its heartbeat is younger than the lease (``BEACON_WORKER_LEASE_SECONDS``).
The same heartbeat renews the leases of its queue messages, so "the worker is alive" and "its
messages stay with it" are one fact. Operators drain a worker by setting its state to ``draining``
(``POST /admin/ops/workers/{id}/drain``); the worker reads its state back with every heartbeat.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from beacon import __version__
from beacon.clock import iso_time
from beacon.keys import Ed25519Key
from beacon.store import Database, now
from beacon.store.tables import runner_keys, workers

STOPPED_RETENTION_S = 7 * 86400.0


class WorkerState(StrEnum):
    RUNNING = "running"
    DRAINING = "draining"
    """Finishing what it holds, taking nothing new; stops when done."""
    STOPPING = "stopping"
    """Hand in-flight work back to the queue now and stop."""
    STOPPED = "stopped"


def new_worker_id(region: str) -> str:
    """Unique per process start: a restarted worker never inherits a dead one's identity."""
    host = socket.gethostname().split(".", 1)[0][:40]
    return f"{region.lower()}-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    region: str
    backend: str
    concurrency: int


async def register_key(db: Database, key: Ed25519Key, at: float | None = None) -> None:
    """Record ``key`` among the keys that sign receipts here (``GET /api/v1/keys``)."""
    at = at if at is not None else now()
    async with db.begin() as conn:
        await conn.execute(
            db.insert(runner_keys)
            .values(kid=key.kid, public_key=key.public_key_b64, first_seen_at=at, last_seen_at=at)
            .on_conflict_do_update(index_elements=[runner_keys.c.kid], set_={"last_seen_at": at})
        )


class WorkerPresence:
    """One worker's row."""

    def __init__(self, db: Database, info: WorkerInfo, key: Ed25519Key) -> None:
        self.db = db
        self.info = info
        self.key = key

    async def register(self) -> None:
        at = now()
        async with self.db.begin() as conn:
            await conn.execute(
                workers.insert().values(
                    id=self.info.id,
                    region=self.info.region,
                    backend=self.info.backend,
                    hostname=socket.gethostname()[:255],
                    pid=os.getpid(),
                    state=WorkerState.RUNNING,
                    concurrency=self.info.concurrency,
                    current=[],
                    public_key=self.key.public_key_b64,
                    version=__version__,
                    started_at=at,
                    heartbeat_at=at,
                )
            )
        await register_key(self.db, self.key, at)

    async def heartbeat(self, current: Sequence[str], state: WorkerState | None = None) -> WorkerState:
        """Refresh the heartbeat (and the state, if given); return the state stored (operators may change it)."""
        values: dict[str, Any] = {"heartbeat_at": now(), "current": list(current)}
        if state is not None:
            values["state"] = state
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    workers.update()
                    .where(workers.c.id == self.info.id)
                    .values(**values)
                    .returning(workers.c.state)
                )
            ).first()
        return WorkerState(row.state) if row is not None else WorkerState.STOPPING

    async def report_backend(self, status: dict[str, Any]) -> None:
        """Store what serves this worker's region (executor status and host facts)."""
        async with self.db.begin() as conn:
            await conn.execute(
                workers.update().where(workers.c.id == self.info.id).values(backend_status=status)
            )

    async def stopped(self) -> None:
        at = now()
        async with self.db.begin() as conn:
            await conn.execute(
                workers.update()
                .where(workers.c.id == self.info.id)
                .values(state=WorkerState.STOPPED, current=[], heartbeat_at=at, stopped_at=at)
            )


def worker_view(row: Any, *, lease_s: float, at: float) -> dict[str, Any]:
    age = at - row.heartbeat_at
    live = row.state != WorkerState.STOPPED and age <= lease_s
    return {
        "id": row.id,
        "region": row.region,
        "backend": row.backend,
        "hostname": row.hostname,
        "pid": row.pid,
        "state": row.state if live or row.state == WorkerState.STOPPED else "lost",
        "live": live,
        "concurrency": row.concurrency,
        "current": list(row.current or []),
        "version": row.version,
        "public_key": row.public_key,
        "started_at": iso_time(row.started_at),
        "heartbeat_at": iso_time(row.heartbeat_at),
        "heartbeat_age_s": round(age, 3),
        "stopped_at": iso_time(row.stopped_at),
        "backend_status": row.backend_status,
    }


async def list_workers(
    db: Database, *, lease_s: float, include_gone: bool = False, region: str | None = None
) -> list[dict[str, Any]]:
    """Workers by region; only live ones unless ``include_gone``."""
    at = now()
    query = sa.select(workers).order_by(workers.c.region, workers.c.started_at)
    if region:
        query = query.where(workers.c.region == region)
    if not include_gone:
        query = query.where(workers.c.state != WorkerState.STOPPED, workers.c.heartbeat_at >= at - lease_s)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [worker_view(row, lease_s=lease_s, at=at) for row in rows]


async def set_worker_state(
    db: Database, worker_id: str, state: WorkerState, *, only_from: Sequence[str]
) -> Any:
    """Move a worker to ``state`` if it is in one of ``only_from``; return its row (None if unknown)."""
    async with db.begin() as conn:
        await conn.execute(
            workers.update()
            .where(workers.c.id == worker_id, workers.c.state.in_(list(only_from)))
            .values(state=state)
        )
        return (await conn.execute(sa.select(workers).where(workers.c.id == worker_id))).first()


async def prune_stopped(db: Database, *, older_than_s: float = STOPPED_RETENTION_S) -> int:
    """Forget workers stopped (or silent) for longer than the retention."""
    cutoff = now() - older_than_s
    async with db.begin() as conn:
        result = await conn.execute(workers.delete().where(workers.c.heartbeat_at < cutoff))
    return int(result.rowcount or 0)


async def regions_without_workers(db: Database, *, lease_s: float) -> dict[str, int]:
    """Regions with executions waiting but no live worker: region → executions waiting."""
    from beacon.store.tables import executions

    at = now()
    async with db.connect() as conn:
        waiting = {
            row.region: int(row.waiting)
            for row in await conn.execute(
                sa.select(executions.c.region, sa.func.count().label("waiting"))
                .where(executions.c.status == "queued")
                .group_by(executions.c.region)
            )
        }
        if not waiting:
            return {}
        live = {
            row.region
            for row in await conn.execute(
                sa.select(workers.c.region)
                .where(workers.c.state != WorkerState.STOPPED, workers.c.heartbeat_at >= at - lease_s)
                .distinct()
            )
        }
    return {region: count for region, count in sorted(waiting.items()) if region not in live}
