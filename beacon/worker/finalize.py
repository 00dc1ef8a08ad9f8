"""Job finalizers: what runs after a job is terminal (the diff report, the bundle, …).

They are listed, in order, in one place: ``beacon.boot.JOB_FINALIZERS`` (``runtime.job_finalizers``).
When a job becomes terminal, the deciding transaction also writes one ``job_finalizations`` row per
finalizer, so a crash right after the decision loses nothing: the sweeper picks pending rows up.

They run in that order, off the worker loop (background tasks, a bounded number at a time),
each under ``BEACON_FINALIZER_TIMEOUT_SECONDS``. A failure is retried with backoff and stops the
chain for that job (later finalizers may build on earlier ones); after ``max_attempts`` it is marked
``failed`` and the chain goes on. A claim with a lease keeps two processes from running the same
finalizer at once; finalizers must still be idempotent (a lease can run out under a slow one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import job_finalizations

log = logging.getLogger("beacon.finalize")


async def plan_finalizers(conn: AsyncConnection, runtime: Runtime, job_ids: Iterable[str], at: float) -> None:
    """Inside the transaction that made ``job_ids`` terminal: one pending row per finalizer."""
    rows = [
        {
            "job_id": job_id,
            "name": name,
            "position": position,
            "state": "pending",
            "attempts": 0,
            "updated_at": at,
        }
        for job_id in sorted(set(job_ids))
        for position, (name, _) in enumerate(runtime.job_finalizers, start=1)
    ]
    if rows:
        await conn.execute(
            runtime.db.insert(job_finalizations).on_conflict_do_nothing(
                index_elements=[job_finalizations.c.job_id, job_finalizations.c.name]
            ),
            rows,
        )


class Finalizers:
    """Runs the finalizer chain of terminal jobs in the background; one per pipeline or worker process."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        timeout_s: float | None = None,
        max_attempts: int = 5,
        concurrency: int = 4,
        retry_base_s: float = 5.0,
    ) -> None:
        self.runtime = runtime
        self.timeout_s = timeout_s if timeout_s is not None else runtime.settings.finalizer_timeout_s
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def schedule(self, job_ids: Iterable[str]) -> None:
        """Run the finalizers of these jobs in the background (never blocks the caller)."""
        if not self.runtime.job_finalizers:
            return
        for job_id in job_ids:
            if job_id in self._tasks:
                continue
            task = asyncio.create_task(self._guarded(job_id), name=f"finalize:{job_id}")
            self._tasks[job_id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for job_id, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[job_id]

    async def _guarded(self, job_id: str) -> None:
        async with self._slots:
            try:
                await self.run_job(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "finalizers of job %s could not run now; the sweeper retries", job_id, exc_info=True
                )

    async def run_job(self, job_id: str) -> None:
        for position, (name, finalizer) in enumerate(self.runtime.job_finalizers, start=1):
            state = await self._claim(job_id, name, position)
            if state in ("done", "failed"):
                continue
            if state != "claimed":
                return  # running elsewhere, or a retry not yet due: the chain waits
            try:
                await asyncio.wait_for(finalizer(self.runtime, job_id), timeout=self.timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                give_up = await self._failed(job_id, name, exc)
                if not give_up:
                    return
                continue
            await self._set(job_id, name, state="done", last_error=None, lease_until=None)
            log.info("finalizer %s done for job %s", name, job_id)

    async def _claim(self, job_id: str, name: str, position: int) -> str:
        at = now()
        claimable = sa.or_(
            job_finalizations.c.state == "pending",
            sa.and_(job_finalizations.c.state == "retry", job_finalizations.c.next_at <= at),
            sa.and_(job_finalizations.c.state == "running", job_finalizations.c.lease_until < at),
        )
        async with self.runtime.db.begin() as conn:
            await conn.execute(
                self.runtime.db.insert(job_finalizations)
                .values(
                    job_id=job_id, name=name, position=position, state="pending", attempts=0, updated_at=at
                )
                .on_conflict_do_nothing(index_elements=[job_finalizations.c.job_id, job_finalizations.c.name])
            )
            claimed = await conn.execute(
                job_finalizations.update()
                .where(job_finalizations.c.job_id == job_id, job_finalizations.c.name == name, claimable)
                .values(
                    state="running",
                    attempts=job_finalizations.c.attempts + 1,
                    lease_until=at + self.timeout_s + 30.0,
                    updated_at=at,
                )
            )
            if claimed.rowcount == 1:
                return "claimed"
            state = await conn.scalar(
                sa.select(job_finalizations.c.state).where(
                    job_finalizations.c.job_id == job_id, job_finalizations.c.name == name
                )
            )
        return str(state)

    async def _failed(self, job_id: str, name: str, exc: BaseException) -> bool:
        """Record a failure; True when the budget is spent (marked failed, the chain goes on)."""
        message = f"{type(exc).__name__}: {exc}"[:2000] if str(exc) else type(exc).__name__
        async with self.runtime.db.connect() as conn:
            attempts = int(
                await conn.scalar(
                    sa.select(job_finalizations.c.attempts).where(
                        job_finalizations.c.job_id == job_id, job_finalizations.c.name == name
                    )
                )
                or 0
            )
        if attempts >= self.max_attempts:
            log.error("finalizer %s failed for job %s after %d attempts: %s", name, job_id, attempts, message)
            await self._set(job_id, name, state="failed", last_error=message, lease_until=None)
            return True
        delay = self.retry_base_s * 2 ** (attempts - 1)
        log.warning(
            "finalizer %s failed for job %s (attempt %d), retry in %.0fs: %s",
            name,
            job_id,
            attempts,
            delay,
            message,
        )
        await self._set(
            job_id, name, state="retry", last_error=message, lease_until=None, next_at=now() + delay
        )
        return False

    async def _set(self, job_id: str, name: str, **values: Any) -> None:
        async with self.runtime.db.begin() as conn:
            await conn.execute(
                job_finalizations.update()
                .where(job_finalizations.c.job_id == job_id, job_finalizations.c.name == name)
                .values(updated_at=now(), **values)
            )

    async def resume_due(self, *, grace_s: float = 10.0, limit: int = 100) -> int:
        """Schedule jobs with finalizers that should run now (for the sweeper); return how many."""
        if not self.runtime.job_finalizers:
            return 0
        at = now()
        due = sa.or_(
            sa.and_(job_finalizations.c.state == "pending", job_finalizations.c.updated_at < at - grace_s),
            sa.and_(job_finalizations.c.state == "retry", job_finalizations.c.next_at <= at),
            sa.and_(job_finalizations.c.state == "running", job_finalizations.c.lease_until < at),
        )
        async with self.runtime.db.connect() as conn:
            rows = await conn.execute(
                sa.select(job_finalizations.c.job_id).where(due).distinct().limit(limit)
            )
            job_ids = [row.job_id for row in rows]
        self.schedule(job_ids)
        return len(job_ids)

    async def wait(self, timeout_s: float) -> None:
        """Give running finalizers up to ``timeout_s`` to end, then cancel them (the sweeper resumes)."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
