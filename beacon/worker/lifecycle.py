"""The job and execution state machines, and the one place a job's outcome is decided.

Job:       created → enqueued → executing → completed | failed | cancelled | timed_out
Execution: queued → running → completed | failed | cancelled | timed_out
           (running → queued again when a transient failure is retried)

Every job transition is a row in ``job_events`` with its time, so "created → enqueued → executing →
completed" can be drawn as a timeline. A job's terminal state is decided only when every one of its
executions is terminal (failure mode 27), inside a transaction that holds the job's row lock, so the
last two executions finishing at the same moment on two workers cannot both miss (or both make)
the decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.store.tables import executions, job_events, jobs


class JobStatus(StrEnum):
    CREATED = "created"
    ENQUEUED = "enqueued"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


JOB_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})
EXECUTION_TERMINAL = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED, ExecutionStatus.TIMED_OUT}
)
EXECUTION_ACTIVE = frozenset({ExecutionStatus.QUEUED, ExecutionStatus.RUNNING})

JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset({JobStatus.ENQUEUED, *JOB_TERMINAL}),
    JobStatus.ENQUEUED: frozenset({JobStatus.EXECUTING, *JOB_TERMINAL}),
    JobStatus.EXECUTING: JOB_TERMINAL,
}
"""Allowed moves; terminal states have none. ``enqueued → cancelled | timed_out`` skips execution."""

# Error codes that decide a job's outcome (recorded on executions and in receipts).
JOB_DEADLINE_EXCEEDED = "job_deadline_exceeded"
QUEUE_WAIT_EXCEEDED = "queue_wait_exceeded"
JOB_CANCELLED = "job_cancelled"
_TIMEOUT_CODES = frozenset({JOB_DEADLINE_EXCEEDED, QUEUE_WAIT_EXCEEDED})


class TransitionError(RuntimeError):
    """A transition the state machine does not allow (a bug, never user input)."""


def check_transition(current: str, target: str) -> None:
    allowed = JOB_TRANSITIONS.get(JobStatus(current), frozenset())
    if JobStatus(target) not in allowed:
        raise TransitionError(f"job cannot go from {current} to {target}")


@dataclass(frozen=True)
class Outcome:
    status: JobStatus
    facts: dict[str, Any]
    """Why: counts, success rate, regions that succeeded, the rule that decided."""

    @property
    def error(self) -> dict[str, Any] | None:
        if self.status is JobStatus.COMPLETED:
            return None
        return {"code": self.facts["rule"], "message": self.facts["message"], **self.facts}


@dataclass(frozen=True)
class ExecutionSummary:
    region: str
    status: str
    error_code: str | None


def decide(
    summaries: Sequence[ExecutionSummary],
    *,
    min_regions: int,
    min_success_rate: float,
    cancel_requested: bool,
) -> Outcome:
    """The terminal state of a job whose executions are all terminal."""
    total = len(summaries)
    completed = [s for s in summaries if s.status == ExecutionStatus.COMPLETED]
    regions = sorted({s.region for s in completed})
    rate = len(completed) / total if total else 0.0
    facts: dict[str, Any] = {
        "executions": total,
        "completed": len(completed),
        "failed": sum(1 for s in summaries if s.status == ExecutionStatus.FAILED),
        "timed_out": sum(1 for s in summaries if s.status == ExecutionStatus.TIMED_OUT),
        "cancelled": sum(1 for s in summaries if s.status == ExecutionStatus.CANCELLED),
        "success_rate": round(rate, 6),
        "regions_succeeded": regions,
        "min_regions": min_regions,
        "min_success_rate": min_success_rate,
    }
    if cancel_requested:
        return Outcome(JobStatus.CANCELLED, {**facts, "rule": "cancelled", "message": "cancelled on request"})
    if any(s.error_code in _TIMEOUT_CODES for s in summaries):
        code = next(s.error_code for s in summaries if s.error_code in _TIMEOUT_CODES)
        message = (
            "the job's execution budget (constraints.timeout) ran out"
            if code == JOB_DEADLINE_EXCEEDED
            else "no worker started the job within the maximum queue wait"
        )
        return Outcome(JobStatus.TIMED_OUT, {**facts, "rule": code, "message": message})
    if total and rate + 1e-9 >= min_success_rate and len(regions) >= min_regions:
        return Outcome(JobStatus.COMPLETED, {**facts, "rule": "success", "message": "constraints met"})
    if rate + 1e-9 < min_success_rate or not total:
        message = f"success rate {rate:.2f} is below min_success_rate {min_success_rate:.2f}"
        if len(regions) < min_regions:
            message += f"; {len(regions)} region(s) succeeded, min_regions is {min_regions}"
        return Outcome(JobStatus.FAILED, {**facts, "rule": "min_success_rate_not_met", "message": message})
    message = f"{len(regions)} region(s) succeeded, min_regions is {min_regions}"
    return Outcome(JobStatus.FAILED, {**facts, "rule": "min_regions_not_met", "message": message})


async def mark_executing(conn: AsyncConnection, job_ids: Iterable[str], at: float) -> list[str]:
    """``enqueued → executing`` for jobs whose first execution starts now; their deadline counts from here."""
    ids = sorted(set(job_ids))
    if not ids:
        return []
    result = await conn.execute(
        jobs.update()
        .where(jobs.c.id.in_(ids), jobs.c.status == JobStatus.ENQUEUED)
        .values(status=JobStatus.EXECUTING, started_at=at, updated_at=at)
        .returning(jobs.c.id)
    )
    started = [row.id for row in result]
    if started:
        await conn.execute(
            job_events.insert(),
            [
                {"job_id": job_id, "status": str(JobStatus.EXECUTING), "at": at, "detail": None}
                for job_id in started
            ],
        )
    return started


async def lock_jobs(conn: AsyncConnection, job_ids: Iterable[str], *, postgres: bool) -> dict[str, Any]:
    """Lock job rows (in id order, so concurrent lockers cannot deadlock) and return them by id."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    query = (
        sa.select(jobs.c.id, jobs.c.status, jobs.c.cancel_requested, jobs.c.started_at, jobs.c.enqueued_at)
        .where(jobs.c.id.in_(ids))
        .order_by(jobs.c.id)
    )
    if postgres:
        query = query.with_for_update()
    return {row.id: row for row in await conn.execute(query)}


async def settle(
    conn: AsyncConnection, locked: dict[str, Any], at: float, constraints: dict[str, tuple[int, float]]
) -> list[tuple[str, Outcome]]:
    """Decide every locked, non-terminal job whose executions are all terminal; return those decided.

    ``locked`` comes from :func:`lock_jobs` in the same transaction; ``constraints`` maps job id to
    (min_regions, min_success_rate).
    """
    candidates = [job_id for job_id, row in locked.items() if row.status not in JOB_TERMINAL]
    if not candidates:
        return []
    active = await conn.execute(
        sa.select(executions.c.job_id)
        .where(executions.c.job_id.in_(candidates), executions.c.status.in_(list(EXECUTION_ACTIVE)))
        .group_by(executions.c.job_id)
    )
    busy = {row.job_id for row in active}
    done = [job_id for job_id in candidates if job_id not in busy]
    if not done:
        return []
    rows = await conn.execute(
        sa.select(
            executions.c.job_id, executions.c.region, executions.c.status, executions.c.error_code
        ).where(executions.c.job_id.in_(done))
    )
    by_job: dict[str, list[ExecutionSummary]] = {job_id: [] for job_id in done}
    for row in rows:
        by_job[row.job_id].append(ExecutionSummary(row.region, row.status, row.error_code))
    decided = []
    for job_id in done:
        job = locked[job_id]
        min_regions, min_rate = constraints[job_id]
        outcome = decide(
            by_job[job_id],
            min_regions=min_regions,
            min_success_rate=min_rate,
            cancel_requested=bool(job.cancel_requested),
        )
        check_transition(job.status, outcome.status)
        decided.append((job_id, outcome))
    await conn.execute(
        jobs.update()
        .where(jobs.c.id == sa.bindparam("b_id"))
        .values(
            status=sa.bindparam("b_status"),
            finished_at=sa.bindparam("b_at"),
            updated_at=sa.bindparam("b_at"),
            error=sa.bindparam("b_error", type_=jobs.c.error.type),
        ),
        [
            {"b_id": job_id, "b_status": str(o.status), "b_at": at, "b_error": o.error}
            for job_id, o in decided
        ],
    )
    await conn.execute(
        job_events.insert(),
        [{"job_id": job_id, "status": str(o.status), "at": at, "detail": o.facts} for job_id, o in decided],
    )
    return decided
