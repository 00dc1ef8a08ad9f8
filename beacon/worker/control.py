"""Ending executions from outside a worker: cancel requests and the sweeper's deadlines.

Both follow the same rules as a worker: lock the execution rows (id order), end only rows that are
still in the state that was checked (queued, or running on a worker that is no longer alive), write
each ending with its receipt, then decide the jobs. A worker still running one of these executions
learns of it through the control channel or its next heartbeat, and its late result is refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon import audit
from beacon.queue.base import ControlEvent, Queue, QueueUnavailable
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import executions, jobs
from beacon.worker.claims import TermsCache, live_workers_among, lock_executions, settle_jobs
from beacon.worker.endings import Ending, EndingItem, write_endings
from beacon.worker.finalize import Finalizers
from beacon.worker.lifecycle import (
    EXECUTION_ACTIVE,
    JOB_CANCELLED,
    JOB_TERMINAL,
    ExecutionStatus,
    JobStatus,
    Outcome,
)

log = logging.getLogger("beacon.worker")


def actor_id(role: str) -> str:
    """Who ended an execution when no worker did (recorded in the receipt's ``worker.id``)."""
    return f"{role}:{socket.gethostname().split('.', 1)[0][:40]}-{os.getpid()}"


@dataclass
class Ended:
    executions: list[str] = field(default_factory=list)
    decided: list[tuple[str, Outcome]] = field(default_factory=list)


async def end_executions(
    conn: AsyncConnection,
    runtime: Runtime,
    terms: TermsCache,
    execution_ids: Iterable[str],
    ending_for: Callable[[Any], Ending | None],
    *,
    by: str,
    lease_s: float,
    take_running: bool = True,
) -> Ended:
    """End the given executions that are still active; ``ending_for(row)`` says how (None: leave it).

    A ``running`` row is ended only if its worker is no longer alive (or ``take_running`` is False,
    which leaves every running row alone).
    """
    at = now()
    rows = await lock_executions(conn, execution_ids, postgres=runtime.db.is_postgres)
    active = [row for row in rows.values() if row.status in EXECUTION_ACTIVE]
    running = [row for row in active if row.status == ExecutionStatus.RUNNING]
    alive = await live_workers_among(conn, (row.worker_id for row in running), at=at, lease_s=lease_s)
    job_terms = await terms.load(conn, {row.job_id for row in active})
    items = []
    for row in active:
        if row.status == ExecutionStatus.RUNNING and (not take_running or row.worker_id in alive):
            continue
        ending = ending_for(row)
        if ending is None:
            continue
        started = row.started_at if row.status == ExecutionStatus.RUNNING else None
        items.append(EndingItem(row, job_terms[row.job_id], ending, row.attempt, started, by))
    await write_endings(conn, runtime, items)
    decided = await settle_jobs(conn, runtime, {row.job_id for row in rows.values()}, terms, at)
    return Ended([item.row.id for item in items], decided)


@dataclass(frozen=True)
class CancelResult:
    job_id: str
    status: str
    cancelled: list[str]
    """Executions ended by this request (they had not started, or their worker was gone)."""
    running: list[str]
    """Executions still running when the request answered (their workers are stopping them)."""
    already_requested: bool


class JobNotFound(LookupError):
    pass


class JobAlreadyTerminal(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(f"the job is already {status}")
        self.status = status


async def cancel_job(
    runtime: Runtime,
    queue: Queue,
    job_id: str,
    *,
    finalizers: Finalizers | None,
    actor: str,
    request_id: str | None = None,
    wait_s: float = 0.0,
    terms: TermsCache | None = None,
) -> CancelResult:
    """Cancel a job: nothing not yet started will start, running attempts are stopped.

    Raises JobNotFound, or JobAlreadyTerminal for a job that ended otherwise than cancelled.
    Waits up to ``wait_s`` for running attempts to stop, so that when it returns with an empty
    ``running`` list no backend call of the job continues. The finalizers of a job it decides run on
    ``finalizers`` (the process's pipeline); with None they wait for a sweeper (their rows are pending).
    """
    db = runtime.db
    terms = terms or TermsCache()
    at = now()
    async with db.begin() as conn:
        job = (
            await conn.execute(
                sa.select(jobs.c.id, jobs.c.status, jobs.c.cancel_requested).where(jobs.c.id == job_id)
            )
        ).first()
        if job is None:
            raise JobNotFound(job_id)
        if job.status in JOB_TERMINAL:
            if job.status == JobStatus.CANCELLED:
                return CancelResult(job_id, job.status, [], [], True)
            raise JobAlreadyTerminal(job.status)
        already = bool(job.cancel_requested)
        if not already:
            await conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(cancel_requested=True, updated_at=at)
            )
            await audit.record(
                conn, actor=actor, action="job.cancel", target=f"job/{job_id}", request_id=request_id, at=at
            )
    # Second transaction, in the common lock order (executions, then the job).
    async with db.begin() as conn:
        ids = [
            row.id
            for row in await conn.execute(
                sa.select(executions.c.id).where(
                    executions.c.job_id == job_id, executions.c.status.in_(list(EXECUTION_ACTIVE))
                )
            )
        ]
        ended = await end_executions(
            conn,
            runtime,
            terms,
            ids,
            lambda row: Ending(
                ExecutionStatus.CANCELLED,
                time.time(),
                error_code=JOB_CANCELLED,
                error_message="the job was cancelled"
                + (" before this execution started" if row.status == ExecutionStatus.QUEUED else ""),
            ),
            by=actor_id("cancel"),
            lease_s=runtime.settings.worker_lease_s,
        )
    try:
        await queue.signal(ControlEvent("cancel", job_id=job_id))
    except QueueUnavailable:
        log.warning(
            "cancel signal for %s not sent (queue away); workers see it on their next heartbeat", job_id
        )
    status, running = await _job_state(runtime, job_id)
    deadline = time.monotonic() + wait_s
    while running and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status, running = await _job_state(runtime, job_id)
    if ended.decided and finalizers is not None:
        finalizers.schedule(job for job, _ in ended.decided)
    return CancelResult(job_id, status, ended.executions, running, already)


async def _job_state(runtime: Runtime, job_id: str) -> tuple[str, list[str]]:
    async with runtime.db.connect() as conn:
        status = await conn.scalar(sa.select(jobs.c.status).where(jobs.c.id == job_id))
        running = [
            row.id
            for row in await conn.execute(
                sa.select(executions.c.id).where(
                    executions.c.job_id == job_id, executions.c.status == ExecutionStatus.RUNNING
                )
            )
        ]
    return str(status), running
