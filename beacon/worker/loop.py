"""The region worker: read, claim, run, commit, acknowledge — the mechanism, nothing else.

Policy lives elsewhere: what an attempt's outcome means in ``runner`` (deadlines, retries,
cancellation), what the database allows in ``store`` (fencing, the job state machine). The worker
only moves messages through those two and keeps itself visible:

* every ``BEACON_HEARTBEAT_SECONDS`` it renews the leases of the messages it holds and its row in
  ``workers``; a worker that stops beating loses its messages to the others one lease later;
* results are committed in groups (one transaction for whatever finished meanwhile), and a
  message is acknowledged only after its result is committed;
* cancel and drain arrive on the queue's control channel (immediate) and through the heartbeat's
  read of the database (the truth, if a signal was missed);
* drain: take nothing new, finish what is held, stop. Stop: hand held messages back now, stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa

from beacon.benchmark.registry import NO_BACKEND
from beacon.executors.base import Executor
from beacon.failpoints import failpoint
from beacon.outage import Backoff, is_outage
from beacon.queue.base import ControlEvent, Delivery, Queue, QueueUnavailable
from beacon.queue.retry import RetryPolicy
from beacon.receipts import host_facts
from beacon.runtime import Runtime
from beacon.store.tables import jobs
from beacon.worker.attempts import AttemptControl, Attempts
from beacon.worker.claims import Claim, Claims, DeadLetterOrder
from beacon.worker.endings import Ending
from beacon.worker.finalize import Finalizers
from beacon.worker.presence import WorkerInfo, WorkerPresence, WorkerState, new_worker_id

log = logging.getLogger("beacon.worker")

T = TypeVar("T")

MAX_COMMIT_BATCH = 256
BACKEND_STATUS_INTERVAL_S = 30.0
"""How often a worker re-reads its executor's status for ``backend_status``."""
BACKEND_STATUS_TIMEOUT_S = 5.0


@dataclass
class _InFlight:
    claim: Claim
    control: AttemptControl
    task: asyncio.Task[None]


@dataclass
class WorkerCounters:
    claimed: int = 0
    committed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    stale: int = 0
    reclaimed: int = 0


@dataclass
class _Commit:
    claim: Claim
    ending: Ending
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Worker:
    """Runs one region's executions on one executor, ``concurrency`` at a time."""

    def __init__(
        self,
        runtime: Runtime,
        queue: Queue,
        *,
        region: str,
        executor: Executor | None = None,
        backend: str | None = None,
        worker_id: str | None = None,
        concurrency: int | None = None,
        policy: RetryPolicy | None = None,
        finalizers: Finalizers | None = None,
        local_finalizers: bool = True,
        block_s: float = 1.0,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.queue = queue
        self.region = region
        self.id = worker_id or new_worker_id(region)
        self.concurrency = concurrency or settings.worker_concurrency
        self.heartbeat_s = settings.heartbeat_interval_s
        self.block_s = block_s
        self.policy = policy or RetryPolicy(
            settings.max_attempts, settings.retry_base_s, settings.retry_max_s
        )
        backend_name = backend or (executor.name if executor is not None else NO_BACKEND)
        self.claims = Claims(
            runtime, worker_id=self.id, region=region, policy=self.policy, lease_s=queue.lease_s
        )
        self.executor = executor
        self.attempts = Attempts(executor, region=region, worker_id=self.id, policy=self.policy)
        self.presence = WorkerPresence(
            runtime.db, WorkerInfo(self.id, region, backend_name, self.concurrency), runtime.runner_key
        )
        self.finalizers = finalizers or Finalizers(runtime)
        self.local_finalizers = local_finalizers
        """False: announce terminal jobs on the control channel; the serve process runs their finalizers."""
        self.state = WorkerState.RUNNING
        self.counters = WorkerCounters()
        self._in_flight: dict[str, _InFlight] = {}
        self._slot = asyncio.Event()
        self._commits: asyncio.Queue[_Commit] = asyncio.Queue()
        self._state_changed = False
        self._next_reclaim = 0.0
        self._handed_back: list[str] = []
        self._queue_backoff = Backoff(log=log)
        self._db_backoff = Backoff(log=log)

    # --- the loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Work until drained or stopped."""
        await self._retrying("register", self.presence.register)
        await asyncio.to_thread(host_facts)  # probed once (GPUs too), now rather than in the first commit
        await self.report_backend()
        log.info("worker %s started: region %s, concurrency %d", self.id, self.region, self.concurrency)
        background = [
            asyncio.create_task(self._heartbeats(), name=f"{self.id}:heartbeat"),
            asyncio.create_task(self._listen(), name=f"{self.id}:control"),
            asyncio.create_task(self._commit_loop(), name=f"{self.id}:commit"),
        ]
        try:
            while self.state is WorkerState.RUNNING:
                free = self.concurrency - len(self._in_flight)
                if free <= 0:
                    self._slot.clear()
                    await self._slot.wait()
                    continue
                # Claim in halves of the concurrency, so one batch is claimed while the last commits.
                deliveries = await self._fetch(min(free, max(1, (self.concurrency + 1) // 2)))
                if not deliveries:
                    continue
                if self.state is not WorkerState.RUNNING:
                    self._handed_back.extend(d.id for d in deliveries)
                    break
                await self._dispatch(deliveries)
        finally:
            await self._wind_down(background)

    async def _fetch(self, free: int) -> list[Delivery]:
        try:
            if time.monotonic() >= self._next_reclaim:
                self._next_reclaim = time.monotonic() + self.queue.lease_s / 2
                reclaimed = await self.queue.reclaim(self.region, self.id, count=free)
                if reclaimed:
                    self.counters.reclaimed += len(reclaimed)
                    log.warning(
                        "worker %s reclaimed %d message(s) from lost workers", self.id, len(reclaimed)
                    )
                    return reclaimed
            deliveries = await self.queue.consume(self.region, self.id, count=free, block_s=self.block_s)
            self._queue_backoff.reset()
            return deliveries
        except QueueUnavailable as exc:
            await self._queue_backoff.wait("queue", exc)
            return []

    async def _dispatch(self, deliveries: list[Delivery]) -> None:
        batch = await self._retrying("claim", lambda: self.claims.claim(deliveries, set(self._in_flight)))
        if batch is None:  # stopped while the database was away: the messages go back
            self._handed_back.extend(d.id for d in deliveries)
            return
        self.counters.duplicates += batch.duplicates
        await self._queue_effects(
            batch.ack,
            [(d, self.queue.lease_s / 2, "running on another worker") for d in batch.defer],
            batch.dead,
        )
        await self._finalize([job_id for job_id, _ in batch.decided])
        for claim in batch.claims:
            control = AttemptControl()
            task = asyncio.create_task(self._attempt(claim, control), name=f"execution:{claim.execution_id}")
            self._in_flight[claim.execution_id] = _InFlight(claim, control, task)
        self.counters.claimed += len(batch.claims)

    async def _attempt(self, claim: Claim, control: AttemptControl) -> None:
        try:
            ending = await self.attempts.run(claim, control)
            commit = _Commit(claim, ending)
            self._commits.put_nowait(commit)
            await commit.done
        except asyncio.CancelledError:
            if control.reason == "shutdown":
                self._handed_back.append(claim.delivery.id)
            # lease lost: another worker holds the message now; nothing to commit or hand back
        except Exception:
            log.exception(
                "attempt of %s could not be committed; its message returns after the lease",
                claim.execution_id,
            )
        finally:
            self._in_flight.pop(claim.execution_id, None)
            self._slot.set()

    # --- commits ---------------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        while True:
            items = [await self._commits.get()]
            # Attempts of one claim batch end together: one turn of the loop lets them all join in.
            await asyncio.sleep(0)
            while len(items) < MAX_COMMIT_BATCH and not self._commits.empty():
                items.append(self._commits.get_nowait())
            try:
                await self._flush(items)
            except Exception as exc:  # never let one bad batch stop the commits of everything else
                log.exception("commit batch failed")
                for item in items:
                    if not item.done.done():
                        item.done.set_exception(exc)

    async def _flush(self, items: Sequence[_Commit]) -> None:
        try:
            result = await self._retrying(
                "finish",
                lambda: self.claims.finish([(c.claim, c.ending) for c in items]),
                give_up_on_stop=False,
            )
        except Exception as exc:
            if len(items) > 1:  # find the one that fails, commit the others
                for item in items:
                    await self._flush([item])
                return
            log.exception("finish of %s failed", items[0].claim.execution_id)
            if not items[0].done.done():
                items[0].done.set_exception(exc)
            return
        assert result is not None
        await self._queue_effects(result.ack, result.retry, result.dead)
        self.counters.committed += len(result.ack) + len(result.dead)
        self.counters.retried += len(result.retry)
        self.counters.dead_lettered += len(result.dead)
        self.counters.stale += len(result.stale)
        for execution_id in result.stale:
            log.info("result of %s refused: another worker took it over or it was ended", execution_id)
        await self._finalize([job_id for job_id, _ in result.decided])
        for item in items:
            if not item.done.done():
                item.done.set_result(None)

    async def _queue_effects(
        self,
        ack: Sequence[Delivery],
        retry: Sequence[tuple[Delivery, float, str]],
        dead: Sequence[DeadLetterOrder],
    ) -> None:
        """Acknowledge and reschedule after the commit. Best effort: a message whose effect is lost
        (Redis away) is delivered again and found finished by the claim. A dead letter's record is
        the row the commit wrote (decision 0021); its message is only acknowledged."""
        for order in dead:
            log.error("dead-lettered %s: %s", order.delivery.payload, order.reason)
        try:
            done = [*ack, *(order.delivery for order in dead)]
            if done:
                await self.queue.ack(self.region, [d.id for d in done])
            for delivery, delay, reason in retry:
                await self.queue.retry(delivery, delay_s=delay, reason=reason)
        except QueueUnavailable as exc:
            log.warning(
                "queue unavailable after commit (%s); the messages will be redelivered and skipped", exc
            )
        except Exception:
            log.exception("queue effects after commit failed; the messages will be redelivered and skipped")

    async def _finalize(self, job_ids: list[str]) -> None:
        """Jobs this worker made terminal: run their finalizers here, or hand them to the serve process.

        Either way the pending rows were written with the decision, so a lost signal only delays
        them until the next sweep.
        """
        if not job_ids:
            return
        if self.local_finalizers:
            self.finalizers.schedule(job_ids)
            return
        try:
            for job_id in job_ids:
                await self.queue.signal(ControlEvent("finalize", job_id=job_id))
        except QueueUnavailable:
            log.debug("finalize signal not sent; the sweeper resumes those finalizers")

    # --- heartbeats and signals ------------------------------------------------------------------
    async def _heartbeats(self) -> None:
        next_report = time.monotonic() + BACKEND_STATUS_INTERVAL_S
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self.beat()
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + BACKEND_STATUS_INTERVAL_S
                await self.report_backend()

    async def report_backend(self) -> None:
        """Publish what serves this region (``GET /admin/ops/workers`` → ``backend_status``).

        The executor's own status (Ollama version and models, yagna identity and payment account,
        llama.cpp model digests) beside the host's facts (GPUs). A status that cannot be read is
        reported as such; it never stops the worker.
        """
        executor = self.executor
        try:
            if executor is None:
                status: dict[str, Any] = {"backend": NO_BACKEND, "ready": True}
            else:
                async with asyncio.timeout(BACKEND_STATUS_TIMEOUT_S):
                    status = dict(await executor.status())
        except Exception as exc:  # a backend that cannot say how it is, is reported, not fatal
            status = {
                "backend": getattr(executor, "name", None),
                "ready": False,
                "error": f"{type(exc).__name__}: {exc}",
            }
        status.setdefault("backend", getattr(executor, "name", NO_BACKEND))
        report = {
            **json.loads(json.dumps(status, default=str)),
            "host_facts": host_facts(),
            "read_at": time.time(),
        }
        try:
            await self.presence.report_backend(report)
        except Exception as exc:
            if not is_outage(exc):
                log.exception("backend status not stored")

    async def beat(self) -> None:
        """Renew leases and the heartbeat; pick up drain/stop requests and cancelled jobs."""
        await failpoint("worker.heartbeat")  # fault tests: a worker that never heartbeats
        held = list(self._in_flight.values())
        try:
            lost = set(await self.queue.renew(self.region, self.id, [f.claim.delivery.id for f in held]))
            for flight in held:
                if flight.claim.delivery.id in lost and flight.control.reason is None:
                    log.warning(
                        "lease of %s lost to another worker: abandoning it", flight.claim.execution_id
                    )
                    flight.control.reason = "lease_lost"
                    flight.task.cancel()
        except QueueUnavailable as exc:
            log.debug("lease renewal failed: %s", exc)
        try:
            write = self.state if self._state_changed else None
            stored = await self.presence.heartbeat([f.claim.execution_id for f in held], write)
            self._state_changed = False
            cancelled = await self._cancelled({f.claim.job_id for f in held})
        except Exception as exc:
            if not is_outage(exc):
                log.exception("heartbeat failed")
            return
        if stored is WorkerState.DRAINING:
            self.drain()
        elif stored is WorkerState.STOPPING:
            self.stop()
        for job_id in cancelled:
            self.cancel_job(job_id)

    async def _cancelled(self, job_ids: set[str]) -> list[str]:
        if not job_ids:
            return []
        async with self.runtime.db.connect() as conn:
            rows = await conn.execute(
                sa.select(jobs.c.id).where(jobs.c.id.in_(sorted(job_ids)), jobs.c.cancel_requested.is_(True))
            )
            return [row.id for row in rows]

    async def _listen(self) -> None:
        while True:
            try:
                async for event in self.queue.control_events():
                    self.on_control(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("control channel interrupted: %s", exc)
                await asyncio.sleep(1.0)

    def on_control(self, event: ControlEvent) -> None:
        if event.kind == "cancel" and event.job_id:
            self.cancel_job(event.job_id)
        elif event.worker_id == self.id and event.kind == "drain":
            self.drain()
        elif event.worker_id == self.id and event.kind == "stop":
            self.stop()

    def cancel_job(self, job_id: str) -> None:
        """Stop every attempt of ``job_id`` held here; each ends ``cancelled`` with its receipt."""
        for flight in list(self._in_flight.values()):
            if flight.claim.job_id == job_id and flight.control.reason is None:
                flight.control.reason = "cancelled"
                flight.task.cancel()

    def drain(self) -> None:
        """Take no new work; finish what is held; then stop."""
        if self.state is WorkerState.RUNNING:
            log.info("worker %s draining (%d in flight)", self.id, len(self._in_flight))
            self.state = WorkerState.DRAINING
            self._state_changed = True
            self._slot.set()

    def stop(self) -> None:
        """Stop now: abandon held attempts and hand their messages back to the queue."""
        if self.state in (WorkerState.STOPPING, WorkerState.STOPPED):
            return
        log.info("worker %s stopping (%d in flight handed back)", self.id, len(self._in_flight))
        self.state = WorkerState.STOPPING
        self._state_changed = True
        for flight in list(self._in_flight.values()):
            if flight.control.reason is None:
                flight.control.reason = "shutdown"
                flight.task.cancel()
        self._slot.set()

    @property
    def in_flight(self) -> list[str]:
        return list(self._in_flight)

    # --- shutdown and outages --------------------------------------------------------------------
    async def _wind_down(self, background: list[asyncio.Task[None]]) -> None:
        flights = [f.task for f in self._in_flight.values()]
        if flights:
            await asyncio.gather(*flights, return_exceptions=True)
        for _ in range(500):  # an attempt may have queued its commit just before ending
            if self._commits.empty():
                break
            await asyncio.sleep(0.01)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.finalizers.wait(timeout_s=5.0)
        self.state = WorkerState.STOPPED
        for _ in range(3):
            try:
                await self.presence.stopped()
                break
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("could not mark worker %s stopped", self.id)
                    break
                await asyncio.sleep(0.5)
        if self._handed_back:
            with contextlib.suppress(QueueUnavailable):
                await self.queue.release(self.region, self.id, self._handed_back)
        log.info("worker %s stopped: %s", self.id, self.counters)

    async def _retrying(
        self, what: str, operation: Callable[[], Awaitable[T]], *, give_up_on_stop: bool = True
    ) -> T | None:
        """Run a database operation, waiting out outages; None if stopped meanwhile."""
        while True:
            try:
                result = await operation()
                self._db_backoff.reset()
                return result
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if give_up_on_stop and self.state is WorkerState.STOPPING:
                    return None
                await self._db_backoff.wait(f"{what}: database", exc)
