"""The sweeper: the database is the truth, the queue a fast path; make the two agree.

Every ``BEACON_SWEEP_SECONDS`` it:

1. **re-enqueues lost work** — executions that are not finished, whose message is nowhere in the
   queue (not waiting, pending or delayed) and whose worker is gone: Redis keeps nothing on disk
   here, so a restart or a FLUSHALL must not lose them. New outbox rows, so the relay stays the
   only writer to the queue; a region is skipped while the relay is behind on it (its rows are
   simply not published yet);
2. **enforces deadlines** — ends the unstarted executions of jobs whose budget ran out, or that no
   worker started within ``BEACON_MAX_QUEUE_WAIT_SECONDS`` (failure modes 12 and 13: the queue wait
   never eats a job's budget, and no job waits forever), and finishes cancellations whose worker died;
3. **settles** jobs whose executions are all terminal but which are not (a crash between the two);
4. resumes due job finalizers, and prunes published outbox rows and long-gone workers.

Several sweepers may run (one per API replica); on PostgreSQL an advisory lock lets one sweep at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from beacon.config import REGIONS
from beacon.outage import Backoff, is_outage
from beacon.queue.base import Queue
from beacon.queue.message import Message, outbox_row
from beacon.queue.relay import OutboxRelay, prune_published
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import executions, jobs, outbox
from beacon.worker.claims import TermsCache, live_workers_among, settle_jobs
from beacon.worker.control import actor_id, end_executions
from beacon.worker.endings import Ending
from beacon.worker.finalize import Finalizers
from beacon.worker.lifecycle import (
    EXECUTION_ACTIVE,
    JOB_CANCELLED,
    JOB_DEADLINE_EXCEEDED,
    QUEUE_WAIT_EXCEEDED,
    ExecutionStatus,
    JobStatus,
)
from beacon.worker.presence import prune_stopped

log = logging.getLogger("beacon.sweeper")

SWEEPER_LOCK_KEY = 0x0BEAC0_5EE9
HOUSEKEEPING_EVERY = 60
"""Sweeps between two prunings."""


@dataclass
class SweepReport:
    requeued: dict[str, int] = field(default_factory=dict)
    skipped_regions: list[str] = field(default_factory=list)
    timed_out: int = 0
    cancelled: int = 0
    settled: int = 0
    finalizers: int = 0
    pruned_outbox: int = 0
    pruned_workers: int = 0
    ran: bool = True

    @property
    def quiet(self) -> bool:
        return not (
            any(self.requeued.values()) or self.timed_out or self.cancelled or self.settled or self.finalizers
        )


class Sweeper:
    def __init__(
        self,
        runtime: Runtime,
        queue: Queue,
        *,
        relay: OutboxRelay | None = None,
        regions: Sequence[str] = REGIONS,
        finalizers: Finalizers,
        grace_s: float | None = None,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.queue = queue
        self.relay = relay
        self.regions = list(regions)
        self.lease_s = queue.lease_s
        self.grace_s = grace_s if grace_s is not None else self.lease_s
        self.max_queue_wait_s = settings.max_queue_wait_s
        self.finalizers = finalizers
        """Shared with the process's workers (the pipeline's): decided jobs and due finalizers run here."""
        self.terms = TermsCache()
        self._sweeps = 0
        self.by = actor_id("sweeper")

    async def run(self, stop: asyncio.Event, *, interval_s: float | None = None) -> None:
        interval = interval_s if interval_s is not None else self.runtime.settings.sweep_interval_s
        backoff = Backoff(log=log)
        while not stop.is_set():
            try:
                report = await self.sweep()
                backoff.reset()
                if not report.quiet:
                    log.warning("sweep: %s", report)
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("sweep failed")
                await backoff.wait("sweeper: database or queue", exc)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def sweep(self) -> SweepReport:
        """One pass of every duty (skipped, with ``ran=False``, while another sweeper holds the lock)."""
        db = self.runtime.db
        if not db.is_postgres:
            return await self._sweep()
        async with db.connect() as conn:
            got = await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(SWEEPER_LOCK_KEY)))
            await conn.commit()
            if not got:
                return SweepReport(ran=False)
            try:
                return await self._sweep()
            finally:
                await conn.execute(sa.select(sa.func.pg_advisory_unlock(SWEEPER_LOCK_KEY)))
                await conn.commit()

    async def _sweep(self) -> SweepReport:
        report = SweepReport()
        self._sweeps += 1
        await self.enforce_deadlines(report)
        await self.settle_stuck(report)
        await self.requeue_lost(report)
        report.finalizers = await self.finalizers.resume_due()
        if self._sweeps % HOUSEKEEPING_EVERY == 1:
            report.pruned_outbox = await prune_published(self.runtime.db)
            report.pruned_workers = await prune_stopped(self.runtime.db)
        return report

    # --- 1. lost messages ------------------------------------------------------------------------
    async def requeue_lost(self, report: SweepReport) -> None:
        for region in self.regions:
            count = await self._requeue_region(region)
            if count is None:
                report.skipped_regions.append(region)
            elif count:
                report.requeued[region] = count
        if any(report.requeued.values()) and self.relay is not None:
            self.relay.wake()

    async def _requeue_region(self, region: str) -> int | None:
        db = self.runtime.db
        at = now()
        async with db.connect() as conn:
            behind = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.published_at.is_(None), outbox.c.topic == region)
            )
        if behind:
            return None  # the relay has not caught up: those executions' messages are on their way
        # Read the queue first: a message seen there is live; one not there may have just been
        # acknowledged, and the database read that follows then shows it finished.
        live = {
            payload.get("execution_id")
            for payload in await self.queue.live_payloads(region)
            if isinstance(payload, dict)
        }
        async with db.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        executions.c.id,
                        executions.c.job_id,
                        executions.c.status,
                        executions.c.worker_id,
                        executions.c.attempt,
                    ).where(
                        executions.c.region == region,
                        executions.c.status.in_(list(EXECUTION_ACTIVE)),
                        executions.c.updated_at < at - self.grace_s,
                    )
                )
            ).all()
            missing = [row for row in rows if row.id not in live]
            running = [row for row in missing if row.status == ExecutionStatus.RUNNING]
            alive = await live_workers_among(
                conn, (row.worker_id for row in running), at=at, lease_s=self.lease_s
            )
        lost = [
            row for row in missing if not (row.status == ExecutionStatus.RUNNING and row.worker_id in alive)
        ]
        if not lost:
            return 0
        async with db.begin() as conn:
            await conn.execute(
                outbox.insert(),
                [
                    outbox_row(Message(row.id, row.job_id, region, enqueued_at=at, reason="sweeper"))
                    for row in lost
                ],
            )
        log.warning("re-enqueued %d execution(s) of %s that had no message in the queue", len(lost), region)
        return len(lost)

    # --- 2. deadlines and cancellations ----------------------------------------------------------
    async def enforce_deadlines(self, report: SweepReport) -> None:
        db = self.runtime.db
        at = now()
        async with db.connect() as conn:
            open_jobs = (
                await conn.execute(
                    sa.select(
                        jobs.c.id,
                        jobs.c.status,
                        jobs.c.started_at,
                        jobs.c.enqueued_at,
                        jobs.c.cancel_requested,
                    ).where(jobs.c.status.in_([JobStatus.ENQUEUED, JobStatus.EXECUTING]))
                )
            ).all()
            terms = await self.terms.load(conn, [job.id for job in open_jobs])
        for job in open_jobs:
            reason: tuple[ExecutionStatus, str, str] | None = None
            deadline = terms[job.id].job_deadline(job.started_at) if job.id in terms else None
            if job.cancel_requested:
                reason = (ExecutionStatus.CANCELLED, JOB_CANCELLED, "the job was cancelled")
            elif deadline is not None and at >= deadline:
                reason = (
                    ExecutionStatus.TIMED_OUT,
                    JOB_DEADLINE_EXCEEDED,
                    "the job's execution budget ran out before this execution finished",
                )
            elif (
                job.status == JobStatus.ENQUEUED
                and job.enqueued_at is not None
                and (at - job.enqueued_at >= self.max_queue_wait_s)
            ):
                reason = (
                    ExecutionStatus.TIMED_OUT,
                    QUEUE_WAIT_EXCEEDED,
                    f"no worker started the job within {self.max_queue_wait_s:g}s",
                )
            if reason is None:
                continue
            ended = await self._end_job(
                job.id, *reason, grace_expired=deadline is not None and at >= deadline + self.lease_s
            )
            if reason[0] is ExecutionStatus.CANCELLED:
                report.cancelled += ended
            else:
                report.timed_out += ended

    async def _end_job(
        self, job_id: str, status: ExecutionStatus, code: str, message: str, *, grace_expired: bool
    ) -> int:
        """End a job's active executions: unstarted ones, and running ones whose worker is gone.

        A live worker past its deadline by more than a lease is not waiting on anything but a
        backend that ignores cancellation: its row is ended too, and its late result refused.
        """

        def ending(row: Any) -> Ending:
            return Ending(status, time.time(), error_code=code, error_message=message)

        async with self.runtime.db.begin() as conn:
            ids = [
                row.id
                for row in await conn.execute(
                    sa.select(executions.c.id).where(
                        executions.c.job_id == job_id, executions.c.status.in_(list(EXECUTION_ACTIVE))
                    )
                )
            ]
            lease_s = 0.0 if grace_expired else self.lease_s  # past the grace, every holder counts as gone
            ended = await end_executions(
                conn, self.runtime, self.terms, ids, ending, by=self.by, lease_s=lease_s
            )
        self.finalizers.schedule(job for job, _ in ended.decided)
        return len(ended.executions)

    # --- 3. jobs left undecided ------------------------------------------------------------------
    async def settle_stuck(self, report: SweepReport) -> None:
        db = self.runtime.db
        active = (
            sa.select(executions.c.id)
            .where(executions.c.job_id == jobs.c.id, executions.c.status.in_(list(EXECUTION_ACTIVE)))
            .exists()
        )
        async with db.connect() as conn:
            stuck = [
                row.id
                for row in await conn.execute(
                    sa.select(jobs.c.id).where(
                        jobs.c.status.in_([JobStatus.ENQUEUED, JobStatus.EXECUTING]), ~active
                    )
                )
            ]
        if not stuck:
            return
        async with db.begin() as conn:
            decided = await settle_jobs(conn, self.runtime, stuck, self.terms, now())
        report.settled += len(decided)
        self.finalizers.schedule(job for job, _ in decided)
