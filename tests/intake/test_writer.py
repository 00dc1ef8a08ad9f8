"""Group commit: concurrent submissions share a transaction but not their fate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.intake import IntakeError
from beacon.intake.writer import PreparedJob, SubmissionWriter
from beacon.store.tables import executions, job_events, jobs, nonces, outbox


def prepared(job_id: str, nonce: str, **job: Any) -> PreparedJob:
    at = 1_750_000_000.0
    return PreparedJob(
        job={
            "id": job_id,
            "status": "enqueued",
            "benchmark": "noop",
            "spec": {},
            "raw": "{}",
            "spec_hash": "0" * 64,
            "signature_scheme": "jcs",
            "public_key": "key",
            "regions": ["US"],
            "total_executions": 1,
            "created_at": at,
            "updated_at": at,
            **job,
        },
        events=[{"job_id": job_id, "status": "created", "at": at}],
        executions=[
            {
                "id": f"ex-{job_id}",
                "job_id": job_id,
                "region": "US",
                "model": "m",
                "question_id": "noop",
                "status": "queued",
                "created_at": at,
                "updated_at": at,
            }
        ],
        outbox=[{"topic": "US", "payload": {"execution_id": f"ex-{job_id}"}, "created_at": at}],
        nonce={"public_key": "key", "nonce": nonce, "expires_at": 4_000_000_000.0},
    )


async def outcome(writer: SubmissionWriter, job: PreparedJob) -> str:
    try:
        await writer.write(job)
    except IntakeError as exc:
        return exc.code
    except Exception as exc:
        return type(exc).__name__
    return "ok"


async def counts(db: Any) -> dict[str, int]:
    async with db.connect() as conn:
        return {
            t.name: (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()
            for t in (jobs, job_events, executions, outbox, nonces)
        }


async def test_concurrent_jobs_share_transactions(db: Any) -> None:
    writer = SubmissionWriter(db)
    results = await asyncio.gather(*(outcome(writer, prepared(f"j{i}", f"n{i}")) for i in range(40)))
    assert results == ["ok"] * 40
    assert await counts(db) == {"jobs": 40, "job_events": 40, "executions": 40, "outbox": 40, "nonces": 40}


async def test_each_job_in_a_batch_keeps_its_own_outcome(db: Any) -> None:
    writer = SubmissionWriter(db)
    assert await outcome(writer, prepared("taken", "n-old")) == "ok"
    results = await asyncio.gather(
        outcome(writer, prepared("a", "n-a")),
        outcome(writer, prepared("b", "n-a")),  # same nonce as a, same batch
        outcome(writer, prepared("taken", "n-c")),  # id already in the database
        outcome(writer, prepared("d", "n-old")),  # nonce already in the database
        outcome(writer, prepared("a", "n-e")),  # same id as a, same batch
        outcome(writer, prepared("f", "n-f")),
    )
    assert results == ["ok", "replay_detected", "job_exists", "replay_detected", "job_exists", "ok"]
    totals = await counts(db)
    assert totals == {"jobs": 3, "job_events": 3, "executions": 3, "outbox": 3, "nonces": 3}
    async with db.connect() as conn:
        kept = set((await conn.execute(sa.select(nonces.c.nonce))).scalars())
    assert kept == {"n-old", "n-a", "n-f"}  # n-c (refused for its id) was taken back


async def test_a_failing_transaction_writes_nothing_and_fails_every_waiter(db: Any) -> None:
    writer = SubmissionWriter(db)
    broken = prepared("broken", "n-broken", benchmark=None)  # NOT NULL violation
    results = await asyncio.gather(outcome(writer, prepared("fine", "n-fine")), outcome(writer, broken))
    assert results[1] == "IntegrityError"
    assert results[0] in ("ok", "IntegrityError")  # shared the transaction, or committed just before
    totals = await counts(db)
    if results[0] == "IntegrityError":
        assert set(totals.values()) == {0}
    else:
        assert totals["jobs"] == totals["executions"] == totals["nonces"] == 1
    assert await outcome(writer, prepared("after", "n-after")) == "ok"  # the writer keeps going


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_cancelled_request_does_not_cancel_the_shared_commit(db: Any) -> None:
    writer = SubmissionWriter(db)
    first = asyncio.create_task(writer.write(prepared("x", "n-x")))
    second = asyncio.create_task(writer.write(prepared("y", "n-y")))
    await asyncio.sleep(0)
    first.cancel()
    await second
    await writer.aclose()
    assert (await counts(db))["jobs"] == 2
