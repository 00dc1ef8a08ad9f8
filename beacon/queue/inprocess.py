"""The embedded queue: the Redis Streams semantics, in one process's memory.

Same contract as :class:`~beacon.queue.streams.RedisStreamsQueue` — FIFO per region, pending
messages with leases renewed by heartbeats, reclaim, delayed retries, a control
channel — so the worker, relay and sweeper run unchanged in ``beacon serve --embedded``. Nothing is
kept on disk: after a restart the sweeper re-enqueues unfinished executions from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from beacon.queue.base import ControlEvent, Delivery, QueueStats, message_age, retry_payload


@dataclass
class _Pending:
    payload: Any
    consumer: str
    leased_at: float
    deliveries: int


@dataclass
class _Region:
    ready: deque[tuple[str, Any]] = field(default_factory=deque)
    pending: OrderedDict[str, _Pending] = field(default_factory=OrderedDict)
    delayed: list[tuple[float, int, Any]] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    consumers: dict[str, float] = field(default_factory=dict)


class InProcessQueue:
    """Region queues in memory, for one process (the embedded runner)."""

    kind = "inprocess"

    def __init__(self, *, lease_s: float = 10.0) -> None:
        self.lease_s = lease_s
        self._regions: dict[str, _Region] = {}
        self._sequence = itertools.count(1)
        self._last_ms = 0
        self._subscribers: set[asyncio.Queue[ControlEvent]] = set()
        self._closed = False

    def _region(self, name: str) -> _Region:
        region = self._regions.get(name)
        if region is None:
            region = self._regions[name] = _Region()
        return region

    def _next_id(self) -> str:
        # Stream-like ids: "<milliseconds>-<sequence>", ordered like Redis's.
        ms = max(int(time.time() * 1000), self._last_ms)
        self._last_ms = ms
        return f"{ms}-{next(self._sequence)}"

    def _promote(self, region: _Region, now: float) -> None:
        while region.delayed and region.delayed[0][0] <= now:
            _, _, payload = heapq.heappop(region.delayed)
            region.ready.append((self._next_id(), payload))

    # --- work ------------------------------------------------------------------------------------
    async def publish(self, region: str, payloads: Sequence[Any]) -> list[str]:
        queue = self._region(region)
        ids = []
        for payload in payloads:
            message_id = self._next_id()
            queue.ready.append((message_id, payload))
            ids.append(message_id)
        if ids:
            queue.wakeup.set()
        return ids

    async def consume(self, region: str, consumer: str, *, count: int, block_s: float) -> list[Delivery]:
        queue = self._region(region)
        deadline = time.monotonic() + block_s
        while True:
            now = time.time()
            queue.consumers[consumer] = now
            self._promote(queue, now)
            if queue.ready:
                out: list[Delivery] = []
                while queue.ready and len(out) < count:
                    message_id, payload = queue.ready.popleft()
                    queue.pending[message_id] = _Pending(payload, consumer, time.monotonic(), 1)
                    out.append(Delivery(message_id, region, payload, 1))
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return []
            if queue.delayed:
                remaining = min(remaining, max(0.0, queue.delayed[0][0] - now))
            queue.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.wakeup.wait(), timeout=max(remaining, 0.001))

    async def reclaim(self, region: str, consumer: str, *, count: int) -> list[Delivery]:
        queue = self._region(region)
        now = time.monotonic()
        out: list[Delivery] = []
        for message_id, entry in queue.pending.items():
            if len(out) >= count:
                break
            if now - entry.leased_at >= self.lease_s:
                entry.consumer = consumer
                entry.leased_at = now
                entry.deliveries += 1
                out.append(Delivery(message_id, region, entry.payload, entry.deliveries))
        return out

    async def renew(self, region: str, consumer: str, ids: Sequence[str]) -> list[str]:
        queue = self._region(region)
        now = time.monotonic()
        queue.consumers[consumer] = time.time()
        lost = []
        for message_id in ids:
            entry = queue.pending.get(message_id)
            if entry is None:
                continue
            if entry.consumer == consumer:
                entry.leased_at = now
            else:
                lost.append(message_id)
        return lost

    async def release(self, region: str, consumer: str, ids: Sequence[str]) -> None:
        queue = self._region(region)
        for message_id in ids:
            entry = queue.pending.get(message_id)
            if entry is not None and entry.consumer == consumer:
                entry.leased_at = float("-inf")

    async def ack(self, region: str, ids: Sequence[str]) -> None:
        queue = self._region(region)
        for message_id in ids:
            queue.pending.pop(message_id, None)

    async def retry(self, delivery: Delivery, *, delay_s: float, reason: str) -> None:
        queue = self._region(delivery.region)
        if queue.pending.pop(delivery.id, None) is None:
            return  # acknowledged meanwhile (a reclaim raced with us): the other holder owns it
        payload = retry_payload(delivery.payload, reason)
        heapq.heappush(queue.delayed, (time.time() + max(0.0, delay_s), next(self._sequence), payload))
        queue.wakeup.set()

    # --- operators and the sweeper ---------------------------------------------------------------
    async def live_payloads(self, region: str) -> list[Any]:
        queue = self._region(region)
        return (
            [payload for _, payload in queue.ready]
            + [entry.payload for entry in queue.pending.values()]
            + [payload for _, _, payload in queue.delayed]
        )

    async def stats(self, region: str) -> QueueStats:
        queue = self._region(region)
        now = time.time()
        self._promote(queue, now)
        oldest_ready = message_age(queue.ready[0][0], now) if queue.ready else None
        oldest_pending = message_age(next(iter(queue.pending)), now) if queue.pending else None
        held: dict[str, int] = {}
        for entry in queue.pending.values():
            held[entry.consumer] = held.get(entry.consumer, 0) + 1
        consumers = [
            {"name": name, "pending": held.get(name, 0), "idle_s": round(now - seen, 3)}
            for name, seen in sorted(queue.consumers.items())
        ]
        return QueueStats(
            region=region,
            depth=len(queue.ready),
            pending=len(queue.pending),
            delayed=len(queue.delayed),
            oldest_ready_age_s=oldest_ready,
            oldest_pending_age_s=oldest_pending,
            consumers=consumers,
        )

    # --- control channel -------------------------------------------------------------------------
    async def signal(self, event: ControlEvent) -> None:
        for subscriber in list(self._subscribers):
            subscriber.put_nowait(event)

    async def control_events(self) -> AsyncIterator[ControlEvent]:
        inbox: asyncio.Queue[ControlEvent] = asyncio.Queue()
        self._subscribers.add(inbox)
        try:
            while True:
                yield await inbox.get()
        finally:
            self._subscribers.discard(inbox)

    async def ping(self) -> bool:
        return not self._closed

    async def aclose(self) -> None:
        self._closed = True
        for queue in self._regions.values():
            queue.wakeup.set()
