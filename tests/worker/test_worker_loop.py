"""Region workers end to end on SQLite and PostgreSQL: intake → relay → queue → worker → receipt."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.benchmark.registry import BENCHMARKS, NOOP
from beacon.canonical import sha256_hex
from beacon.executors.base import ExecutionRequest
from beacon.queue.message import execution_message
from beacon.runtime import Runtime
from beacon.store.tables import dead_letters, executions, job_events, job_finalizations, jobs, outbox
from beacon.verify import verify_receipt
from beacon.worker import attempts
from beacon.worker.control import cancel_job
from tests.pipeline_support import Submitter, audit_pipeline, wait_for_jobs, wait_until
from tests.worker.conftest import ScriptedExecutor, make_worker, running


async def rows(runtime: Runtime, job_id: str) -> list[sa.Row]:
    async with runtime.db.connect() as conn:
        return (
            await conn.execute(
                sa.select(executions).where(executions.c.job_id == job_id).order_by(executions.c.id)
            )
        ).all()


async def job(runtime: Runtime, job_id: str) -> sa.Row:
    async with runtime.db.connect() as conn:
        return (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).one()


async def timeline(runtime: Runtime, job_id: str) -> list[tuple[str, float]]:
    async with runtime.db.connect() as conn:
        result = await conn.execute(
            sa.select(job_events.c.status, job_events.c.at)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.at, job_events.c.id)
        )
        return [(row.status, row.at) for row in result]


async def test_noop_jobs_complete_in_every_region_with_signed_logged_receipts(
    runtime: Runtime, submitter: Submitter
) -> None:
    workers = [make_worker(runtime, region) for region in ("US", "EU", "ASIA")]
    async with running(runtime, *workers):
        ids = [
            await submitter.submit(runtime, f"noop-{n}", regions=["US", "EU", "ASIA"], models=["m1", "m2"])
            for n in range(3)
        ]
        statuses = await wait_for_jobs(runtime.db, ids, timeout_s=30)
    assert set(statuses.values()) == {"completed"}
    assert await audit_pipeline(runtime.db, [runtime.runner_key.public_key_b64]) == []
    done = await rows(runtime, "noop-0")
    assert len(done) == 6 and {r.region for r in done} == {"US", "EU", "ASIA"}
    for row in done:
        assert row.status == "completed" and row.attempt == 1 and row.leaf_index is not None
        assert row.receipt["backend"]["name"] == "noop" and row.receipt["region"] == {
            "requested": row.region,
            "served": row.region,
        }
        assert row.started_at >= row.queued_at and row.finished_at >= row.started_at
    events = await timeline(runtime, "noop-0")
    assert [status for status, _ in events if status != "published"] == [
        "created",
        "enqueued",
        "executing",
        "completed",
    ]
    assert [status for status, _ in events].count("published") == 3  # the relay, once per region
    assert [at for _, at in events] == sorted(at for _, at in events)
    row = await job(runtime, "noop-0")
    assert row.started_at is not None and row.finished_at >= row.started_at and row.error is None


async def test_only_a_benchmark_that_calls_no_model_runs_on_a_worker_without_a_backend(
    runtime: Runtime, submitter: Submitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(runtime, make_worker(runtime, "US")):
        await submitter.submit(runtime, "no-model")
        await wait_for_jobs(runtime.db, ["no-model"], timeout_s=30)
        (done,) = await rows(runtime, "no-model")
        assert done.status == "completed" and done.receipt["question"]["set_version"] is None
        assert done.receipt["prompt"]["prompt_sha256"] is None
        monkeypatch.setitem(BENCHMARKS, "noop", replace(NOOP, calls_model=True))
        await submitter.submit(runtime, "needs-model")
        await wait_for_jobs(runtime.db, ["needs-model"], timeout_s=30)
    (failed,) = await rows(runtime, "needs-model")
    assert failed.status == "failed" and failed.error_code == "backend_not_configured"
    assert failed.receipt["question"]["set_version"] is not None


async def test_the_request_carries_the_question_text_system_prompt_and_options(
    runtime: Runtime, submitter: Submitter
) -> None:
    executor = ScriptedExecutor()
    async with running(runtime, make_worker(runtime, "EU", executor)):
        await submitter.submit_question(
            runtime,
            "prompts",
            {"temperature": 0.0, "seed": 7, "max_tokens": 32, "top_p": 0.9, "prompt_context": "both"},
        )
        await wait_for_jobs(runtime.db, ["prompts"], timeout_s=20)
    by_variant = {call.system_prompt.count("based in"): call for call in executor.calls}
    assert len(executor.calls) == 2 and set(by_variant) == {0, 1}
    region_call = by_variant[1]
    assert region_call.prompt == "What is 2+2?"  # the text, never the id
    assert "based in Europe" in region_call.system_prompt
    assert (region_call.options.seed, region_call.options.max_tokens, region_call.options.top_p) == (
        7,
        32,
        0.9,
    )
    assert region_call.model == "smollm2-135m" and region_call.region == "EU"
    assert region_call.deadline is not None and region_call.deadline > time.time() - 60
    receipts = [row.receipt for row in await rows(runtime, "prompts")]
    for receipt in receipts:
        verify_receipt(receipt, runtime.runner_key.public_key_b64)
        assert receipt["options"] == {"temperature": 0.0, "seed": 7, "max_tokens": 32, "top_p": 0.9}
        assert receipt["model"]["digest"] == "sha256:" + "ab" * 32
        assert receipt["output"]["text"] == "answer to: What is 2+2?"
        assert receipt["provider"] == {"id": "test-provider", "info": {"host": "test"}}
    assert len({r["prompt"]["system_prompt_sha256"] for r in receipts}) == 2


def sent_hashes(request: ExecutionRequest) -> dict[str, str]:
    return {
        "system_prompt_sha256": sha256_hex(request.system_prompt.encode()),
        "prompt_sha256": sha256_hex(request.prompt.encode()),
    }


@pytest.mark.parametrize("fail", [None, "permanent"])
async def test_the_receipt_states_the_request_the_backend_received(
    runtime: Runtime, submitter: Submitter, monkeypatch: pytest.MonkeyPatch, fail: str | None
) -> None:
    def altered(**fields: Any) -> ExecutionRequest:
        built = build(**fields)  # what reaches the backend differs from a rebuild from the row
        return replace(
            built,
            system_prompt=built.system_prompt + " (as sent)",
            prompt=built.prompt + " (as sent)",
            options=replace(built.options, max_tokens=5),
        )

    build = attempts.build_request
    monkeypatch.setattr(attempts, "build_request", altered)
    executor = ScriptedExecutor(fail=fail)
    async with running(runtime, make_worker(runtime, "EU", executor)):
        await submitter.submit_question(
            runtime, "as-sent", {"temperature": 0.0, "seed": 7, "max_tokens": 32, "prompt_context": "neutral"}
        )
        await wait_for_jobs(runtime.db, ["as-sent"], timeout_s=20)
    [call] = executor.calls
    [row] = await rows(runtime, "as-sent")
    assert row.status == ("completed" if fail is None else "failed")
    verify_receipt(row.receipt, runtime.runner_key.public_key_b64)
    assert row.receipt["prompt"] == {"variant": row.variant, **sent_hashes(call)}
    assert row.receipt["options"] == call.options.as_dict() and row.receipt["options"]["max_tokens"] == 5


async def test_transient_failures_are_retried_then_dead_lettered_with_a_failed_receipt(
    runtime: Runtime, submitter: Submitter
) -> None:
    executor = ScriptedExecutor(fail="transient", code="backend_unavailable")
    async with running(runtime, make_worker(runtime, "US", executor)):
        await submitter.submit(
            runtime, "poison", benchmark="who-are-you", constraints={"min_success_rate": 1.0}
        )
        assert await wait_for_jobs(runtime.db, ["poison"], timeout_s=20) == {"poison": "failed"}
    assert len(executor.calls) == 3  # MAX_ATTEMPTS=3: the first try and two retries
    (row,) = await rows(runtime, "poison")
    assert (row.status, row.attempt, row.error_code) == ("failed", 3, "backend_unavailable")
    assert "retry budget exhausted" in row.error_detail
    assert row.receipt["status"] == "failed" and row.receipt["error"]["code"] == "backend_unavailable"
    async with runtime.db.connect() as conn:
        (letter,) = (await conn.execute(sa.select(dead_letters))).all()
    assert (
        letter.execution_id == row.id and letter.attempts == 3 and letter.error_code == "backend_unavailable"
    )
    assert letter.reason.startswith("backend_unavailable") and "retry budget exhausted" in letter.reason
    stats = await runtime.queue.stats("US")  # the queue keeps nothing of it: acknowledged (0021)
    assert (stats.depth, stats.pending, stats.delayed) == (0, 0, 0)
    assert (await job(runtime, "poison")).error["code"] == "min_success_rate_not_met"


async def test_a_permanent_error_fails_at_once(runtime: Runtime, submitter: Submitter) -> None:
    executor = ScriptedExecutor(fail="permanent", code="model_not_available")
    async with running(runtime, make_worker(runtime, "US", executor)):
        await submitter.submit(runtime, "perm", benchmark="who-are-you")
        await wait_for_jobs(runtime.db, ["perm"], timeout_s=20)
    (row,) = await rows(runtime, "perm")
    assert (row.status, row.attempt, row.error_code) == ("failed", 1, "model_not_available")
    assert len(executor.calls) == 1


async def test_a_backend_serving_another_region_fails_the_execution(
    runtime: Runtime, submitter: Submitter
) -> None:
    async with running(runtime, make_worker(runtime, "ASIA", ScriptedExecutor(served_region="EU"))):
        await submitter.submit(runtime, "elsewhere", benchmark="who-are-you", regions=["ASIA"])
        await wait_for_jobs(runtime.db, ["elsewhere"], timeout_s=20)
    (row,) = await rows(runtime, "elsewhere")
    assert (row.status, row.error_code, row.served_region) == ("failed", "region_mismatch", "EU")
    assert row.receipt["region"] == {"requested": "ASIA", "served": "EU"}


async def test_provider_timeout_bounds_each_attempt(runtime: Runtime, submitter: Submitter) -> None:
    executor = ScriptedExecutor(delay_s=30)
    async with running(runtime, make_worker(runtime, "US", executor)):
        started = time.monotonic()
        await submitter.submit(
            runtime,
            "slow",
            benchmark="who-are-you",
            constraints={"provider_timeout": "300ms", "timeout": "1m"},
        )
        await wait_for_jobs(runtime.db, ["slow"], timeout_s=20)
        elapsed = time.monotonic() - started
    (row,) = await rows(runtime, "slow")
    assert (row.status, row.error_code, row.attempt) == ("timed_out", "provider_timeout", 3)
    assert executor.cancelled == 3 and executor.running == 0  # every call was stopped at its deadline
    assert elapsed < 10
    assert (await job(runtime, "slow")).status == "failed"  # a provider timeout is a failure, not the job's


async def test_the_job_budget_counts_from_the_first_start_not_from_submission(
    runtime: Runtime, submitter: Submitter
) -> None:
    await submitter.submit(runtime, "late", benchmark="who-are-you", constraints={"timeout": "700ms"})
    await asyncio.sleep(1.2)  # queued longer than its whole budget: that must not count
    executor = ScriptedExecutor(delay_s=30)
    async with running(runtime, make_worker(runtime, "US", executor)):
        assert await wait_for_jobs(runtime.db, ["late"], timeout_s=20) == {"late": "timed_out"}
    (row,) = await rows(runtime, "late")
    assert (row.status, row.error_code) == ("timed_out", "job_deadline_exceeded")
    assert len(executor.calls) == 1 and executor.cancelled == 1
    record = await job(runtime, "late")
    assert 0.6 <= record.finished_at - record.started_at < 3.0
    assert record.error["code"] == "job_deadline_exceeded"


async def test_cancel_stops_the_running_call_and_everything_queued(
    runtime: Runtime, submitter: Submitter
) -> None:
    executor = ScriptedExecutor(delay_s=60)
    worker = make_worker(runtime, "US", executor, concurrency=1)
    async with running(runtime, worker):
        await submitter.submit(runtime, "stopme", benchmark="who-are-you", models=["a", "b", "c"])
        await wait_until(lambda: _running(executor), timeout_s=10, what="the first call to start")
        result = await cancel_job(
            runtime, runtime.queue, "stopme", finalizers=worker.finalizers, actor="operator:test", wait_s=5
        )
        assert result.running == [] and result.status == "cancelled"  # nothing of the job runs now
        assert executor.running == 0 and executor.cancelled == 1
        calls = len(executor.calls)
        await asyncio.sleep(0.5)
        assert len(executor.calls) == calls == 1  # no backend call after the cancel
    done = await rows(runtime, "stopme")
    assert {row.status for row in done} == {"cancelled"} and all(row.receipt for row in done)
    assert sorted(row.attempt for row in done) == [0, 0, 1]
    for row in done:  # the stopped call's receipt states what it sent; the unstarted ones sent nothing
        hashes = (
            sent_hashes(executor.calls[0])
            if row.attempt == 1
            else dict.fromkeys(sent_hashes(executor.calls[0]))
        )
        assert row.receipt["prompt"] == {"variant": row.variant, **hashes}
    assert (await job(runtime, "stopme")).status == "cancelled"
    again = await cancel_job(
        runtime, runtime.queue, "stopme", finalizers=worker.finalizers, actor="operator:test"
    )
    assert again.already_requested and again.status == "cancelled"
    assert await audit_pipeline(runtime.db, [runtime.runner_key.public_key_b64]) == []


async def _running(executor: ScriptedExecutor) -> bool:
    return executor.running > 0


async def test_duplicate_messages_run_the_execution_once(runtime: Runtime, submitter: Submitter) -> None:
    executor = ScriptedExecutor(delay_s=0.3)
    worker = make_worker(runtime, "US", executor, concurrency=4)
    async with running(runtime, worker):
        await submitter.submit(runtime, "dup", benchmark="who-are-you")
        (row,) = await rows(runtime, "dup")
        async with runtime.db.begin() as conn:  # what a relay crash after publishing would produce
            await conn.execute(
                outbox.insert(),
                [
                    {
                        "topic": "US",
                        "payload": execution_message(row.id, "dup", "US", enqueued_at=1.0),
                        "created_at": 1.0,
                    }
                    for _ in range(3)
                ],
            )
        await wait_for_jobs(runtime.db, ["dup"], timeout_s=20)
        await wait_until(lambda: _quiet(runtime), timeout_s=10, what="the duplicates to be acknowledged")
    assert len(executor.calls) == 1
    (row,) = await rows(runtime, "dup")
    assert row.attempt == 1 and row.status == "completed"


async def _quiet(runtime: Runtime) -> bool:
    stats = await runtime.queue.stats("US")
    return stats.depth == stats.pending == stats.delayed == 0


async def test_draining_finishes_held_work_and_takes_no_more(runtime: Runtime, submitter: Submitter) -> None:
    executor = ScriptedExecutor(delay_s=0.5)
    worker = make_worker(runtime, "US", executor, concurrency=1)
    async with running(runtime, worker):
        await submitter.submit(runtime, "drain", benchmark="who-are-you", models=["a", "b"])
        await wait_until(lambda: _running(executor), timeout_s=10, what="the first call")
        worker.drain()
        await wait_until(lambda: _stopped(worker), timeout_s=10, what="the worker to stop")
    done = {row.model: row.status for row in await rows(runtime, "drain")}
    assert sorted(done.values()) == ["completed", "queued"] and executor.cancelled == 0


async def _stopped(worker: object) -> bool:
    return str(getattr(worker, "state", "")) == "stopped"


async def test_finalizers_run_in_order_and_a_failing_one_is_retried(
    runtime: Runtime, submitter: Submitter
) -> None:
    calls: list[tuple[str, str]] = []
    failures = {"diff": 1}

    async def diff(rt: Runtime, job_id: str) -> None:
        calls.append(("diff", job_id))
        if failures["diff"]:
            failures["diff"] -= 1
            raise RuntimeError("the diff engine is not ready")

    async def report(rt: Runtime, job_id: str) -> None:
        calls.append(("report", job_id))

    runtime.job_finalizers = (("diff", diff), ("report", report))
    worker = make_worker(runtime, "US")
    finalizers = worker.finalizers
    finalizers.retry_base_s = 0.1
    async with running(runtime, worker):
        await submitter.submit(runtime, "fin", regions=["US"])
        await wait_for_jobs(runtime.db, ["fin"], timeout_s=20)
        await wait_until(lambda: _has(calls, ("diff", "fin")), timeout_s=10, what="the first finalizer")
        await asyncio.sleep(0.3)
        await finalizers.resume_due(grace_s=0)  # what the sweeper does
        await wait_until(lambda: _has(calls, ("report", "fin")), timeout_s=10, what="the second finalizer")
    assert calls == [("diff", "fin"), ("diff", "fin"), ("report", "fin")]
    async with runtime.db.connect() as conn:
        states = {
            row.name: (row.state, row.attempts)
            for row in await conn.execute(
                sa.select(job_finalizations).where(job_finalizations.c.job_id == "fin")
            )
        }
    assert states == {"diff": ("done", 2), "report": ("done", 1)}


async def _has(calls: list[tuple[str, str]], item: tuple[str, str]) -> bool:
    return item in calls


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_many_jobs_many_workers_each_execution_once(
    runtime: Runtime, submitter: Submitter, concurrency: int
) -> None:
    workers = [make_worker(runtime, "US", concurrency=concurrency) for _ in range(2)]
    async with running(runtime, *workers):
        ids = [
            await submitter.submit(runtime, f"bulk-{n}", models=[f"m{i}" for i in range(5)])
            for n in range(10)
        ]
        await wait_for_jobs(runtime.db, ids, timeout_s=30)
    assert await audit_pipeline(runtime.db, [runtime.runner_key.public_key_b64]) == []
    assert sum(w.counters.claimed for w in workers) == 50


async def test_a_worker_publishes_what_serves_its_region(runtime: Runtime) -> None:
    from beacon.worker.presence import list_workers

    class Broken(ScriptedExecutor):
        async def status(self) -> dict[str, Any]:
            raise RuntimeError("status unreadable")

    workers = [make_worker(runtime, "US", ScriptedExecutor()), make_worker(runtime, "EU", Broken())]
    async with running(runtime, *workers):
        listed: list[dict[str, Any]] = []

        async def reported() -> bool:
            listed[:] = await list_workers(runtime.db, lease_s=runtime.settings.worker_lease_s)
            return len(listed) == 2 and all(w["backend_status"] for w in listed)

        await wait_until(reported, timeout_s=10, what="both workers' backend status")
    by_region = {w["region"]: w["backend_status"] for w in listed}
    assert by_region["US"]["ready"] is True and by_region["US"]["backend"] == "scripted"
    assert by_region["US"]["host_facts"]["cpu_count"] >= 1  # the host's facts (GPUs included) beside it
    assert by_region["EU"]["ready"] is False and "status unreadable" in by_region["EU"]["error"]
