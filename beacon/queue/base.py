"""The queue interface: what the relay, the workers, the sweeper and the operators need.

Two implementations behave alike: :class:`~beacon.queue.streams.RedisStreamsQueue` (service mode)
and :class:`~beacon.queue.inprocess.InProcessQueue` (embedded mode). The contract:

* **publish** appends to the region's queue; within a region delivery is FIFO.
* **consume** hands each message to one consumer and keeps it *pending* until it is acknowledged,
  or handed back for a retry. Acknowledge only after the result is committed.
* A pending message carries a **lease**: its consumer renews it with every heartbeat; when the
  consumer stops (crash, kill -9, partition) the lease runs out and **reclaim** hands the message to
  another consumer. There is no fixed lock TTL that a long execution could outlive.
* **retry** acknowledges the message and schedules a copy (attempt + 1) after a delay; the delay
  and the budget are policy (:class:`~beacon.queue.retry.RetryPolicy`), decided by the caller.
* Dead letters are not the queue's: the worker records them in the database (decision 0021) and
  acknowledges their messages like any other.
* The control channel carries best-effort signals (cancel a job, drain a worker). The database is
  the truth for both; signals only make them immediate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from beacon.queue.message import Message, MessageError


class QueueUnavailable(Exception):
    """The queue backend cannot be reached (Redis down, connection reset)."""


def retry_payload(payload: Any, reason: str) -> Any:
    """The copy of a message that :meth:`Queue.retry` schedules: ``attempt`` + 1, and why."""
    if not isinstance(payload, dict):
        return payload
    attempt = payload.get("attempt", 0)
    return {
        **payload,
        "attempt": (attempt if isinstance(attempt, int) else 0) + 1,
        "reason": "retry",
        "last_error": reason[:500],
    }


def message_age(message_id: str, now: float) -> float:
    """Seconds since a message with a stream id (``<milliseconds>-<sequence>``) was published."""
    return max(0.0, now - int(message_id.split("-", 1)[0]) / 1000)


@dataclass(frozen=True)
class Delivery:
    """One message handed to one consumer."""

    id: str
    """The queue's id for this message (a Redis stream id); changes when a retry re-publishes it."""
    region: str
    payload: Any
    deliveries: int = 1
    """How many times this message id was handed out (more than one after a reclaim)."""

    def parse(self) -> tuple[Message | None, str | None]:
        """The parsed message, or None and what is wrong with the payload (the dead-letter reason)."""
        try:
            return Message.parse(self.payload), None
        except MessageError as exc:
            return None, str(exc)


@dataclass(frozen=True)
class QueueStats:
    region: str
    depth: int
    """Messages waiting to be delivered."""
    pending: int
    """Delivered, not yet acknowledged (in progress, or held by a worker that died)."""
    delayed: int
    """Waiting for a retry's backoff to pass."""
    oldest_ready_age_s: float | None
    """Age of the oldest message not yet delivered: how far behind the region's workers are."""
    oldest_pending_age_s: float | None
    consumers: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "depth": self.depth,
            "pending": self.pending,
            "delayed": self.delayed,
            "oldest_ready_age_s": self.oldest_ready_age_s,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "consumers": self.consumers,
        }


@dataclass(frozen=True)
class ControlEvent:
    """A signal on the control channel: ``cancel`` (job_id) or ``drain`` (worker_id)."""

    kind: str
    job_id: str | None = None
    worker_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "job_id": self.job_id, "worker_id": self.worker_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlEvent:
        return cls(str(data.get("kind", "")), data.get("job_id"), data.get("worker_id"))


class Queue(Protocol):
    """Region queues with acknowledgement, leases and retries."""

    kind: str
    """``redis`` or ``inprocess``."""
    lease_s: float

    async def publish(self, region: str, payloads: Sequence[Any]) -> list[str]:
        """Append messages to the region's queue, in order; return their ids."""
        ...

    async def consume(self, region: str, consumer: str, *, count: int, block_s: float) -> list[Delivery]:
        """Up to ``count`` new messages for ``consumer``, waiting at most ``block_s`` for the first."""
        ...

    async def reclaim(self, region: str, consumer: str, *, count: int) -> list[Delivery]:
        """Take over messages whose lease ran out (their consumer stopped renewing it)."""
        ...

    async def renew(self, region: str, consumer: str, ids: Sequence[str]) -> list[str]:
        """Extend the lease of messages ``consumer`` is working on (on every heartbeat).

        Returns the ids another consumer holds now: their lease ran out and they were reclaimed, so
        the caller must abandon that work (its result would be refused anyway).
        """
        ...

    async def release(self, region: str, consumer: str, ids: Sequence[str]) -> None:
        """Hand messages back now, so another consumer reclaims them without waiting out the lease."""
        ...

    async def ack(self, region: str, ids: Sequence[str]) -> None:
        """Done with these messages: remove them for good."""
        ...

    async def retry(self, delivery: Delivery, *, delay_s: float, reason: str) -> None:
        """Acknowledge ``delivery`` and publish a copy with ``attempt + 1`` after ``delay_s``."""
        ...

    async def live_payloads(self, region: str) -> list[Any]:
        """Every payload that may still be delivered: waiting, pending or delayed (for the sweeper)."""
        ...

    async def stats(self, region: str) -> QueueStats: ...

    async def signal(self, event: ControlEvent) -> None:
        """Broadcast a control event to every subscriber (best effort)."""
        ...

    def control_events(self) -> AsyncIterator[ControlEvent]:
        """Subscribe to control events until the iterator is closed."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...
