"""Worker test fixtures: a real runtime (SQLite and PostgreSQL) on the in-process queue, real
intake, real workers — and executor test doubles that fail or block on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from beacon import __version__
from beacon.boot import open_runtime
from beacon.executors.base import (
    ExecutionRequest,
    ExecutionResult,
    PermanentExecutorError,
    TransientExecutorError,
)
from beacon.queue.relay import OutboxRelay
from beacon.runtime import Runtime
from beacon.worker.loop import Worker
from tests.pipeline_support import Submitter


@pytest.fixture
def submitter() -> Submitter:
    return Submitter()


@pytest.fixture
def worker_settings() -> dict[str, Any]:
    """Fast clocks for tests; override in a module to change them."""
    return {
        "heartbeat_interval_s": 0.1,
        "worker_lease_s": 0.6,
        "retry_base_s": 0.05,
        "retry_max_s": 0.2,
        "max_attempts": 3,
        "cancel_wait_s": 5.0,
    }


@pytest.fixture
async def runtime(
    database_url: str,
    make_settings: Callable[..., Any],
    submitter: Submitter,
    worker_settings: dict[str, Any],
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        database_url=database_url, embedded=True, trusted_keys=submitter.trusted_keys, **worker_settings
    )
    async with open_runtime(settings) as rt:
        yield rt


@asynccontextmanager
async def running(runtime: Runtime, *workers: Worker) -> AsyncIterator[tuple[Worker, ...]]:
    """Run the relay and ``workers`` until the block ends (then drain them)."""
    stop = asyncio.Event()
    relay = OutboxRelay(runtime.db, runtime.queue)
    tasks = [asyncio.create_task(relay.run(stop)), *(asyncio.create_task(w.run()) for w in workers)]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.drain()
        stop.set()
        relay.wake()
        done, pending = await asyncio.wait(tasks, timeout=15)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


def make_worker(runtime: Runtime, region: str = "US", executor: Any = None, **kwargs: Any) -> Worker:
    return Worker(runtime, runtime.queue, region=region, executor=executor, block_s=0.2, **kwargs)


class ScriptedExecutor:
    """A test double: answers like a backend, or fails/blocks as told. Records every call."""

    name = "scripted"

    def __init__(
        self,
        *,
        fail: str | None = None,
        code: str = "backend_unavailable",
        delay_s: float = 0.0,
        served_region: str | None = None,
    ) -> None:
        self.fail = fail
        self.code = code
        self.delay_s = delay_s
        self.served_region = served_region
        self.calls: list[ExecutionRequest] = []
        self.running = 0
        self.cancelled = 0
        self.finished = 0

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        self.calls.append(request)
        self.running += 1
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.fail == "transient":
                raise TransientExecutorError(self.code, "the backend is down (test double)")
            if self.fail == "permanent":
                raise PermanentExecutorError(self.code, "the backend refuses this (test double)")
            self.finished += 1
            return ExecutionResult(
                text=f"answer to: {request.prompt}",
                tokens_in=12,
                tokens_out=5,
                timings={"total": self.delay_s, "eval": max(self.delay_s, 0.01)},
                model_digest="sha256:" + "ab" * 32,
                backend="scripted",
                backend_version=__version__,
                provider_id="test-provider",
                served_region=self.served_region or request.region,
                provider_info={"host": "test"},
            )
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    async def status(self) -> dict[str, Any]:
        return {"ready": True}

    async def aclose(self) -> None:
        return None


from tests.pipeline_support import make_cluster  # noqa: E402, F401 - real worker processes (test_worker_process)
