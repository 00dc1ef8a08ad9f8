"""The worker's two transactions: claim a batch of messages, and finish a batch of attempts.

**Claim** locks the executions the messages name and decides, per message, with the database as
the truth: run it (``attempt`` + 1 — the fencing token), acknowledge it (already finished: a
duplicate), defer it (running on a live worker: a duplicate that must not run twice), end it
without running (job cancelled, job out of time, budget spent), or dead-letter it (names nothing,
or names something else than it claims).

**Finish** writes what attempts produced, but only where the row is still the one this worker
claimed (status ``running``, same ``attempt``, same worker); a worker that lost its lease and was
replaced finds its write refused and throws its result away. Terminal endings get their receipts
in the same transaction, then every job whose executions are all terminal is decided.

Lock order everywhere (claim, finish, cancel, sweeper): execution rows in id order, then the log's
sequencer, then job rows in id order — so these transactions cannot deadlock each other.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.queue.base import Delivery
from beacon.queue.message import Message
from beacon.queue.retry import RetryPolicy
from beacon.receipts import receipt_id
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import dead_letters, executions, jobs, workers
from beacon.worker.endings import (
    EXECUTION_COLUMNS,
    Ending,
    EndingItem,
    sign_ending,
    update_rows,
    write_endings,
)
from beacon.worker.finalize import plan_finalizers
from beacon.worker.lifecycle import (
    EXECUTION_TERMINAL,
    JOB_CANCELLED,
    JOB_DEADLINE_EXCEEDED,
    ExecutionStatus,
    JobStatus,
    Outcome,
    lock_jobs,
    mark_executing,
    settle,
)
from beacon.worker.terms import JobTerms

log = logging.getLogger("beacon.worker")


@dataclass(frozen=True)
class Claim:
    """An execution this worker may now run (its ``attempt`` is the fencing token)."""

    delivery: Delivery
    message: Message
    row: Any
    terms: JobTerms
    attempt: int
    started_at: float
    job_started_at: float
    previous_error: tuple[str, str | None] | None = None
    """The code and message the attempt before this one failed with (it was retried): the receipt names it."""

    @property
    def execution_id(self) -> str:
        return str(self.row.id)

    @property
    def job_id(self) -> str:
        return str(self.row.job_id)

    @property
    def job_deadline(self) -> float:
        return self.job_started_at + self.terms.timeout_s

    @property
    def deadline(self) -> float:
        """When this attempt must have ended: its provider timeout, or the job's budget if sooner."""
        return min(self.started_at + self.terms.provider_timeout_s, self.job_deadline)


@dataclass(frozen=True)
class DeadLetterOrder:
    delivery: Delivery
    reason: str
    attempts: int


@dataclass
class ClaimBatch:
    claims: list[Claim] = field(default_factory=list)
    ack: list[Delivery] = field(default_factory=list)
    defer: list[Delivery] = field(default_factory=list)
    dead: list[DeadLetterOrder] = field(default_factory=list)
    decided: list[tuple[str, Outcome]] = field(default_factory=list)
    duplicates: int = 0
    """Messages for executions that had already ended (relay re-publish, redelivery)."""


@dataclass
class FinishBatch:
    ack: list[Delivery] = field(default_factory=list)
    retry: list[tuple[Delivery, float, str]] = field(default_factory=list)
    dead: list[DeadLetterOrder] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """Execution ids whose result was refused: another worker took them over, or they were ended."""
    decided: list[tuple[str, Outcome]] = field(default_factory=list)


@dataclass(frozen=True)
class _JobState:
    status: str
    cancel_requested: bool
    started_at: float | None


class TermsCache:
    """Parsed JobTerms by job id (a job's spec never changes), bounded."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[str, JobTerms] = OrderedDict()

    def get(self, job_id: str) -> JobTerms | None:
        terms = self._items.get(job_id)
        if terms is not None:
            self._items.move_to_end(job_id)
        return terms

    def put(self, terms: JobTerms) -> None:
        self._items[terms.job_id] = terms
        self._items.move_to_end(terms.job_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    async def load(self, conn: AsyncConnection, job_ids: Iterable[str]) -> dict[str, JobTerms]:
        wanted = set(job_ids)
        found = {job_id: terms for job_id in wanted if (terms := self.get(job_id)) is not None}
        missing = sorted(wanted - found.keys())
        if missing:
            rows = await conn.execute(
                sa.select(jobs.c.id, jobs.c.spec, jobs.c.spec_hash).where(jobs.c.id.in_(missing))
            )
            for row in rows:
                terms = JobTerms.from_spec(row.id, row.spec, row.spec_hash)
                self.put(terms)
                found[row.id] = terms
        return found


async def lock_executions(conn: AsyncConnection, ids: Iterable[str], *, postgres: bool) -> dict[str, Any]:
    """Lock execution rows in id order and return them by id."""
    ordered = sorted(set(ids))
    if not ordered:
        return {}
    query = sa.select(*EXECUTION_COLUMNS).where(executions.c.id.in_(ordered)).order_by(executions.c.id)
    if postgres:
        query = query.with_for_update()
    return {row.id: row for row in await conn.execute(query)}


async def settle_jobs(
    conn: AsyncConnection, runtime: Runtime, job_ids: Iterable[str], terms: TermsCache, at: float
) -> list[tuple[str, Outcome]]:
    """Lock the jobs and decide those whose executions are all terminal."""
    ids = set(job_ids)
    if not ids:
        return []
    locked = await lock_jobs(conn, ids, postgres=runtime.db.is_postgres)
    by_job = await terms.load(conn, locked)
    decided = await settle(conn, locked, at, {job_id: by_job[job_id].rules for job_id in locked})
    await plan_finalizers(conn, runtime, [job_id for job_id, _ in decided], at)
    return decided


async def live_workers_among(
    conn: AsyncConnection, worker_ids: Iterable[str | None], *, at: float, lease_s: float
) -> set[str]:
    """The workers among ``worker_ids`` whose heartbeat is within the lease."""
    ids = sorted({w for w in worker_ids if w})
    if not ids:
        return set()
    rows = await conn.execute(
        sa.select(workers.c.id).where(
            workers.c.id.in_(ids), workers.c.heartbeat_at >= at - lease_s, workers.c.state != "stopped"
        )
    )
    return {row.id for row in rows}


async def insert_dead_letters(conn: AsyncConnection, orders: Sequence[DeadLetterOrder], at: float) -> None:
    rows = []
    for order in orders:
        payload = order.delivery.payload
        fields = payload if isinstance(payload, dict) else {}
        rows.append(
            {
                "region": order.delivery.region,
                "message_id": order.delivery.id,
                "payload": payload if isinstance(payload, dict) else {"raw": str(payload)[:4000]},
                "reason": order.reason,
                "attempts": order.attempts,
                "execution_id": str(fields.get("execution_id"))[:64] if fields.get("execution_id") else None,
                "job_id": str(fields.get("job_id"))[:128] if fields.get("job_id") else None,
                "error_code": order.reason.split(":", 1)[0][:64],
                "created_at": at,
            }
        )
    if rows:
        await conn.execute(dead_letters.insert(), rows)


def previous_attempt_info(claim: Claim) -> dict[str, Any]:
    """Receipt evidence of the failure that made this attempt a retry (a model process's signal, a timeout)."""
    if claim.previous_error is None:
        return {}
    code, message = claim.previous_error
    return {"previous_attempt": {"attempt": claim.attempt - 1, "error": {"code": code, "message": message}}}


class Claims:
    """Claim and finish for one worker."""

    def __init__(
        self, runtime: Runtime, *, worker_id: str, region: str, policy: RetryPolicy, lease_s: float
    ) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.region = region
        self.policy = policy
        self.lease_s = lease_s
        self.terms = TermsCache()

    # --- claim -----------------------------------------------------------------------------------
    async def claim(self, deliveries: Sequence[Delivery], in_flight: set[str]) -> ClaimBatch:
        batch = ClaimBatch()
        parsed: list[tuple[Delivery, Message]] = []
        for delivery in deliveries:
            message, error = delivery.parse()
            if message is None:
                batch.dead.append(DeadLetterOrder(delivery, f"invalid_message: {error}", delivery.deliveries))
            else:
                parsed.append((delivery, message))
        db = self.runtime.db
        at = now()
        async with db.begin() as conn:
            rows, job_rows = await self._lock_with_jobs(conn, [m.execution_id for _, m in parsed])
            job_ids = set(job_rows)
            terms = await self.terms.load(conn, job_ids)
            holders = await live_workers_among(
                conn,
                (row.worker_id for row in rows.values() if row.status == ExecutionStatus.RUNNING),
                at=at,
                lease_s=self.lease_s,
            )
            endings: list[EndingItem] = []
            starting: list[tuple[Delivery, Message, Any]] = []
            seen: set[str] = set()
            for delivery, message in parsed:
                row: Any = rows.get(message.execution_id)
                problem = self._mismatch(message, row)
                if problem is not None:
                    batch.dead.append(DeadLetterOrder(delivery, problem, delivery.deliveries))
                    continue
                if row.status in EXECUTION_TERMINAL:
                    batch.ack.append(delivery)  # a duplicate of finished work
                    batch.duplicates += 1
                    continue
                if row.id in seen or (
                    row.status == ExecutionStatus.RUNNING
                    and (
                        row.id in in_flight or (row.worker_id != self.worker_id and row.worker_id in holders)
                    )
                ):
                    batch.defer.append(delivery)  # running on a live worker: look again later
                    continue
                seen.add(row.id)
                job, job_terms = job_rows[row.job_id], terms[row.job_id]
                deadline = job_terms.job_deadline(job.started_at)
                if job.cancel_requested:
                    ending = Ending(
                        ExecutionStatus.CANCELLED,
                        at,
                        error_code=JOB_CANCELLED,
                        error_message="the job was cancelled before this execution started",
                    )
                elif deadline is not None and at >= deadline:
                    ending = Ending(
                        ExecutionStatus.TIMED_OUT,
                        at,
                        error_code=JOB_DEADLINE_EXCEEDED,
                        error_message="the job's execution budget ran out before this execution started",
                    )
                elif self.policy.exhausted(row.attempt, message.max_attempts or job_terms.max_attempts):
                    ending = Ending(
                        ExecutionStatus.FAILED,
                        at,
                        error_code="attempts_exhausted",
                        error_message=f"{row.attempt} attempt(s) started and none finished (the worker was lost)",
                        dead_letter=True,
                    )
                else:
                    starting.append((delivery, message, row))
                    continue
                started = row.started_at if row.status == ExecutionStatus.RUNNING else None
                endings.append(EndingItem(row, job_terms, ending, row.attempt, started, self.worker_id))
                if ending.dead_letter:
                    batch.dead.append(
                        DeadLetterOrder(delivery, f"attempts_exhausted: {ending.error_message}", row.attempt)
                    )
                else:
                    batch.ack.append(delivery)
            if starting:
                await update_rows(
                    conn,
                    [
                        {
                            "_id": row.id,
                            "status": str(ExecutionStatus.RUNNING),
                            "attempt": row.attempt + 1,
                            "worker_id": self.worker_id,
                            "started_at": at,
                            "queued_at": row.queued_at
                            if row.queued_at is not None
                            else (message.enqueued_at or at),
                            "error_code": None,
                            "error_detail": None,
                            "updated_at": at,
                        }
                        for _, message, row in starting
                    ],
                )
                first_starts = {
                    row.job_id for _, _, row in starting if job_rows[row.job_id].status == JobStatus.ENQUEUED
                }
                await mark_executing(conn, first_starts, at)
            await write_endings(conn, self.runtime, endings)
            await insert_dead_letters(conn, batch.dead, at)
            batch.decided = await settle_jobs(
                conn, self.runtime, {e.row.job_id for e in endings}, self.terms, at
            )
            for delivery, message, row in starting:
                job = job_rows[row.job_id]
                previous = (row.error_code, row.error_detail) if row.error_code else None
                batch.claims.append(
                    Claim(
                        delivery,
                        message,
                        row,
                        terms[row.job_id],
                        row.attempt + 1,
                        at,
                        job.started_at or at,
                        previous,
                    )
                )
        return batch

    async def _lock_with_jobs(
        self, conn: AsyncConnection, ids: list[str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Lock the executions (id order) and read their jobs' state, in one statement."""
        if not ids:
            return {}, {}
        query = (
            sa.select(
                *EXECUTION_COLUMNS,
                jobs.c.status.label("job_status"),
                jobs.c.cancel_requested,
                jobs.c.started_at.label("job_started_at"),
            )
            .join(jobs, jobs.c.id == executions.c.job_id)
            .where(executions.c.id.in_(sorted(set(ids))))
            .order_by(executions.c.id)
        )
        if self.runtime.db.is_postgres:
            query = query.with_for_update(of=executions)
        rows: dict[str, Any] = {}
        job_rows: dict[str, Any] = {}
        for row in await conn.execute(query):
            rows[row.id] = row
            job_rows[row.job_id] = _JobState(row.job_status, bool(row.cancel_requested), row.job_started_at)
        return rows, job_rows

    def _mismatch(self, message: Message, row: Any) -> str | None:
        if row is None:
            return f"unknown_execution: no execution {message.execution_id!r} (job {message.job_id!r})"
        if row.job_id != message.job_id:
            return (
                f"message_mismatch: execution {row.id} belongs to job {row.job_id!r}, not {message.job_id!r}"
            )
        if row.region != message.region or row.region != self.region:
            return (
                f"wrong_region: execution {row.id} is for {row.region}; the message says {message.region} "
                f"and reached the {self.region} queue"
            )
        return None

    # --- finish ----------------------------------------------------------------------------------
    async def finish(self, done: Sequence[tuple[Claim, Ending]]) -> FinishBatch:
        batch = FinishBatch()
        db = self.runtime.db
        terminal = {
            claim.execution_id: EndingItem(
                claim.row,
                claim.terms,
                ending,
                claim.attempt,
                claim.started_at,
                self.worker_id,
                previous_attempt_info(claim),
            )
            for claim, ending in done
            if ending.terminal
        }
        # Sign before taking any lock; a receipt whose write is refused below is thrown away.
        prepared = {execution_id: sign_ending(self.runtime, item) for execution_id, item in terminal.items()}
        async with db.begin() as conn:
            at = now()
            rows = await lock_executions(
                conn, (claim.execution_id for claim, _ in done), postgres=db.is_postgres
            )
            endings: list[EndingItem] = []
            retries: list[dict[str, Any]] = []
            for claim, ending in done:
                row = rows.get(claim.execution_id)
                ours = (
                    row is not None
                    and row.status == ExecutionStatus.RUNNING
                    and row.attempt == claim.attempt
                    and row.worker_id == self.worker_id
                )
                if not ours:
                    if row is not None and row.status in EXECUTION_TERMINAL:
                        if row.receipt_id != receipt_id(claim.execution_id, claim.attempt):
                            batch.stale.append(claim.execution_id)
                        batch.ack.append(claim.delivery)  # finished by us earlier, or ended by someone else
                    elif (
                        row is not None
                        and row.status == ExecutionStatus.QUEUED
                        and row.attempt == claim.attempt
                    ):
                        batch.retry.append(
                            (claim.delivery, ending.retry_in or 0.0, ending.error_code or "retry")
                        )
                    else:
                        batch.stale.append(claim.execution_id)  # taken over: the new holder owns the message
                    continue
                if ending.terminal:
                    endings.append(terminal[claim.execution_id])
                    if ending.dead_letter:
                        batch.dead.append(
                            DeadLetterOrder(
                                claim.delivery, f"{ending.error_code}: {ending.error_message}", claim.attempt
                            )
                        )
                    else:
                        batch.ack.append(claim.delivery)
                else:
                    retries.append(
                        {
                            "_id": claim.execution_id,
                            "status": str(ExecutionStatus.QUEUED),
                            "worker_id": None,
                            "error_code": ending.error_code,
                            "error_detail": ending.error_message,
                            "updated_at": at,
                        }
                    )
                    batch.retry.append((claim.delivery, ending.retry_in or 0.0, ending.error_code or "retry"))
            await update_rows(conn, retries)
            await write_endings(conn, self.runtime, endings, prepared)
            await insert_dead_letters(conn, batch.dead, at)
            batch.decided = await settle_jobs(
                conn, self.runtime, {e.row.job_id for e in endings}, self.terms, at
            )
        return batch
