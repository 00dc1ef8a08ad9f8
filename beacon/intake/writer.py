"""Group commit for submissions: concurrent jobs share one transaction, each one all-or-nothing.

A request hands its prepared rows to the writer and waits. The writer takes everything waiting
(up to ``max_batch``) and writes it in one transaction with one multi-row statement per table; the
next batch gathers while this one commits. At low load a batch is one job and nothing waits; under
load the per-transaction costs (round trips, commit flush) are shared.

Each job keeps its own atomicity inside the batch: its nonce is claimed first (a replay gets
``replay_detected``), then its job row (a taken id gets ``job_exists`` and its nonce is removed
again), and only jobs whose nonce and id both went in get their events, executions, outbox rows and
idempotency record. If the transaction fails, no job of the batch was written and every waiting
request gets the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from beacon.intake import idempotency
from beacon.intake.batching import Batcher
from beacon.intake.errors import IntakeError
from beacon.intake.idempotency import Claim, StoredResponse
from beacon.intake.replay import nonce_claim, replay_detected
from beacon.metrics import INTAKE_BATCH_JOBS, INTAKE_COMMIT_SECONDS
from beacon.store import Database, now
from beacon.store.tables import executions, job_events, jobs, nonces, outbox


@dataclass
class PreparedJob:
    """Every row one accepted submission writes, ready for the writer."""

    job: dict[str, Any]
    events: list[dict[str, Any]]
    executions: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    nonce: dict[str, Any]
    """``{"public_key", "nonce", "expires_at"}``"""
    idempotency: tuple[Claim, StoredResponse] | None = None

    @property
    def job_id(self) -> str:
        return str(self.job["id"])

    @property
    def nonce_key(self) -> tuple[str, str]:
        return self.nonce["public_key"], self.nonce["nonce"]


def job_exists(job_id: str) -> IntakeError:
    return IntakeError(
        "job_exists", f"a job with id {job_id!r} already exists; give the new job another id", status=409
    )


def _observe(jobs: int, seconds: float) -> None:
    INTAKE_BATCH_JOBS.observe(jobs)
    INTAKE_COMMIT_SECONDS.observe(seconds)


class SubmissionWriter:
    """Writes prepared jobs in shared transactions; one per API process (``Intake.writer``)."""

    def __init__(self, db: Database, *, max_batch: int = 200) -> None:
        self.db = db
        self._batcher: Batcher[PreparedJob, None] = Batcher(
            self._flush, max_batch=max_batch, name="beacon-intake-writer", on_batch=_observe
        )

    async def write(self, job: PreparedJob) -> None:
        """Return once ``job`` is committed; raise IntakeError (replay, taken id) or the database's error."""
        await self._batcher.submit(job)

    async def aclose(self) -> None:
        """Finish what is waiting (the app's lifespan closes the intake, which closes this)."""
        await self._batcher.aclose()

    async def _flush(self, batch: list[PreparedJob]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(batch)
        nonces_seen: set[tuple[str, str]] = set()
        ids_seen: set[str] = set()
        for index, job in enumerate(batch):  # duplicates inside one batch: the first one wins
            if job.nonce_key in nonces_seen:
                outcomes[index] = replay_detected()
            elif job.job_id in ids_seen:
                outcomes[index] = job_exists(job.job_id)
            else:
                nonces_seen.add(job.nonce_key)
                ids_seen.add(job.job_id)
        live = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not live:
            return outcomes
        async with self.db.begin() as conn:
            claimed = {
                (row.public_key, row.nonce)
                for row in await conn.execute(nonce_claim(self.db, now=now()), [batch[i].nonce for i in live])
            }
            for i in live:
                if batch[i].nonce_key not in claimed:
                    outcomes[i] = replay_detected()
            live = [i for i in live if outcomes[i] is None]
            if live:
                inserted = {
                    row.id
                    for row in await conn.execute(
                        self.db.insert(jobs)
                        .on_conflict_do_nothing(index_elements=[jobs.c.id])
                        .returning(jobs.c.id),
                        [batch[i].job for i in live],
                    )
                }
                taken = [i for i in live if batch[i].job_id not in inserted]
                if taken:
                    for i in taken:
                        outcomes[i] = job_exists(batch[i].job_id)
                    await conn.execute(
                        sa.delete(nonces).where(
                            sa.tuple_(nonces.c.public_key, nonces.c.nonce).in_(
                                [batch[i].nonce_key for i in taken]
                            )
                        )
                    )
                live = [i for i in live if outcomes[i] is None]
            if live:
                await self._insert(conn, job_events, [row for i in live for row in batch[i].events])
                await self._insert(conn, executions, [row for i in live for row in batch[i].executions])
                await self._insert(conn, outbox, [row for i in live for row in batch[i].outbox])
                completions = [
                    idempotency.completion(pair[0], job_id=batch[i].job_id, response=pair[1])
                    for i in live
                    if (pair := batch[i].idempotency) is not None
                ]
                if completions:
                    await conn.execute(idempotency.COMPLETE, completions)
        return outcomes

    @staticmethod
    async def _insert(conn: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            await conn.execute(table.insert(), rows)
