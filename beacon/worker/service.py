"""Running the pipeline: the relay, the sweeper and region workers, together or apart.

* ``beacon serve --embedded`` (or ``beacon serve`` without ``REDIS_URL``): API + relay + sweeper +
  one worker per region (US, EU, ASIA) in one process, on the in-process queue.
* ``beacon serve`` with ``REDIS_URL``: API + relay + sweeper; workers run elsewhere.
* ``beacon worker --region EU``: one region worker process.

:class:`Pipeline` owns the background tasks and supervises in-process workers: a worker that
crashes is restarted with backoff, one that was drained stays stopped until an operator starts
it again (``POST /admin/ops/workers/{id}/start``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from beacon.config import REGIONS
from beacon.executors.base import ExecutionRequest, ExecutionResult, Executor, PermanentExecutorError
from beacon.queue.base import Queue
from beacon.queue.relay import OutboxRelay
from beacon.runtime import Runtime
from beacon.worker.finalize import Finalizers
from beacon.worker.loop import Worker
from beacon.worker.presence import WorkerState, register_key
from beacon.worker.sweeper import Sweeper

log = logging.getLogger("beacon.pipeline")


class UnavailableExecutor:
    """Stands in for a backend that could not be built, so the worker still serves ``noop`` jobs and
    fails model executions with the reason instead of crashing at start."""

    def __init__(self, name: str, code: str, reason: str) -> None:
        self.name = name
        self.code = code
        self.reason = reason

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        raise PermanentExecutorError(self.code, self.reason)

    async def status(self) -> dict[str, Any]:
        return {"ready": False, "backend": self.name, "error": self.reason}

    async def aclose(self) -> None:
        return None


async def build_executor(
    runtime: Runtime, region: str, backend: str | None = None, *, strict: bool = False
) -> Executor:
    """The region's executor from the registry.

    ``strict`` (a ``beacon worker`` process): a backend that cannot serve the region raises, so the
    worker fails at start with the reason. Otherwise (the embedded runner's three regions) the
    region gets an :class:`UnavailableExecutor`: its model executions fail with the reason, ``noop``
    jobs still run, and the API stays up.
    """
    name = backend or runtime.settings.backend_for(region)
    try:
        from beacon.executors.registry import create_executor

        executor: Any = create_executor(runtime.settings, region, backend)
        if inspect.isawaitable(executor):
            executor = await executor
    except PermanentExecutorError as exc:
        if strict:
            raise
        log.error("backend %s cannot serve %s: %s", name, region, exc.message)
        return UnavailableExecutor(name, exc.code, exc.message)
    except ImportError as exc:
        if strict:
            raise PermanentExecutorError(
                "backend_not_installed", f"backend {name} is not installed: {exc}"
            ) from exc
        log.error("backend %s is not installed: %s", name, exc)
        return UnavailableExecutor(name, "backend_not_installed", f"backend {name} is not installed: {exc}")
    result: Executor = executor
    return result


async def warm_up(executor: Executor, models: Sequence[str]) -> None:
    """Load the default models before taking work, so no first execution pays a cold start
    inside its provider timeout (failure mode 14). Best effort: a model that fails to load is
    reported when an execution asks for it."""
    load = getattr(executor, "load", None)
    if load is None:
        return
    for model in models:
        try:
            seconds = await load(model)
            log.info("%s loaded %s in %.2fs", executor.name, model, seconds or 0.0)
        except Exception as exc:
            log.warning("%s could not load %s at start: %s", executor.name, model, exc)


@dataclass
class _Slot:
    region: str
    backend: str | None
    worker: Worker | None = None
    task: asyncio.Task[None] | None = None
    wanted: bool = True
    restarts: int = 0
    history: list[str] = field(default_factory=list)


class Pipeline:
    """Relay, sweeper and in-process workers of one process."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        relay: bool = True,
        sweeper: bool = True,
        worker_regions: Sequence[str] = (),
        backend: str | None = None,
        concurrency: int | None = None,
        preload: bool = False,
    ) -> None:
        self.runtime = runtime
        self.queue: Queue = runtime.queue
        self.concurrency = concurrency
        self.preload = preload
        self.finalizers = Finalizers(runtime)
        """This process's finalizer runner: shared by the sweeper, the in-process workers and cancel."""
        self.relay = (
            OutboxRelay(runtime.db, self.queue, batch=runtime.settings.relay_batch) if relay else None
        )
        self.sweeper = (
            Sweeper(runtime, self.queue, relay=self.relay, finalizers=self.finalizers) if sweeper else None
        )
        self._slots = {region: _Slot(region, backend) for region in worker_regions}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    def embedded(cls, runtime: Runtime, **kwargs: Any) -> Pipeline:
        return cls(runtime, worker_regions=REGIONS, **kwargs)

    async def start(self) -> None:
        try:  # this process signs receipts too (cancel, sweeper): list its key at GET /api/v1/keys
            await register_key(self.runtime.db, self.runtime.runner_key)
        except Exception as exc:
            log.warning("could not record this process's signing key yet: %s", exc)
        self._listener = asyncio.create_task(self._finalize_on_signal(), name="finalize-signals")
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(self._stop), name="relay"))
        if self.sweeper is not None:
            self._tasks.append(asyncio.create_task(self.sweeper.run(self._stop), name="sweeper"))
        for slot in self._slots.values():
            slot.task = asyncio.create_task(self._supervise(slot), name=f"worker:{slot.region}")

    async def _finalize_on_signal(self) -> None:
        """Run the finalizers of jobs that worker processes announce as terminal (until cancelled)."""
        while True:
            try:
                async for event in self.queue.control_events():
                    if event.kind == "finalize" and event.job_id:
                        self.finalizers.schedule([event.job_id])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sweeper covers what is missed meanwhile
                log.debug("control channel interrupted: %s", exc)
                await asyncio.sleep(1.0)

    @property
    def workers(self) -> list[Worker]:
        return [slot.worker for slot in self._slots.values() if slot.worker is not None]

    def worker(self, worker_id: str) -> Worker | None:
        return next((w for w in self.workers if w.id == worker_id), None)

    def manages(self, region: str) -> bool:
        return region in self._slots

    def start_region(self, region: str) -> bool:
        """Start the region's worker again after a drain or stop; False if it is already running."""
        slot = self._slots[region]
        if slot.task is not None and not slot.task.done():
            return False
        slot.wanted = True
        slot.task = asyncio.create_task(self._supervise(slot), name=f"worker:{region}")
        return True

    async def _supervise(self, slot: _Slot) -> None:
        delay = 0.5
        executor = await build_executor(self.runtime, slot.region, slot.backend)
        if self.preload and self.runtime.settings.warm_up:
            await warm_up(executor, self.runtime.settings.default_models)
        try:
            while slot.wanted and not self._stop.is_set():
                worker = Worker(
                    self.runtime,
                    self.queue,
                    region=slot.region,
                    executor=executor,
                    backend=slot.backend or self.runtime.settings.backend_for(slot.region),
                    concurrency=self.concurrency,
                    finalizers=self.finalizers,
                )
                slot.worker = worker
                slot.history.append(worker.id)
                try:
                    await worker.run()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    slot.restarts += 1
                    log.exception("worker %s crashed; restarting in %.1fs", worker.id, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if worker.state is WorkerState.STOPPED and not self._stop.is_set():
                    log.info("worker %s of %s stopped on request; not restarting", worker.id, slot.region)
                    slot.wanted = False
        finally:
            with contextlib.suppress(Exception):
                await executor.aclose()

    def hard_stop(self) -> None:
        """Stop in-process workers now (their current work goes back to the queue)."""
        for slot in self._slots.values():
            slot.wanted = False
            if slot.worker is not None:
                slot.worker.stop()

    async def stop(self, *, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Stop workers (draining them first unless ``drain`` is False), then the relay and sweeper."""
        for slot in self._slots.values():
            slot.wanted = False
            if slot.worker is not None:
                if drain:
                    slot.worker.drain()
                else:
                    slot.worker.stop()
        tasks = [slot.task for slot in self._slots.values() if slot.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for slot in self._slots.values():
                if slot.worker is not None and slot.task in pending:
                    slot.worker.stop()
            if pending:
                await asyncio.wait(pending, timeout=10.0)
        self._stop.set()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.finalizers.wait(timeout_s=5.0)
