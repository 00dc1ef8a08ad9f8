"""The queue: transactional outbox relay, Redis Streams region queues, the in-process queue.

``open_queue(settings)`` picks the implementation: Redis Streams when ``REDIS_URL`` is set and the
runner is not embedded, the in-process queue otherwise. Both satisfy :class:`Queue`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from beacon.config import REGIONS, Settings
from beacon.queue.base import ControlEvent, DeadLetter, Delivery, Queue, QueueStats, QueueUnavailable
from beacon.queue.inprocess import InProcessQueue
from beacon.queue.message import Message, MessageError, execution_message, outbox_row
from beacon.queue.retry import RetryPolicy

if TYPE_CHECKING:
    from beacon.runtime import Runtime

__all__ = [
    "ControlEvent",
    "DeadLetter",
    "Delivery",
    "InProcessQueue",
    "Message",
    "MessageError",
    "Queue",
    "QueueStats",
    "QueueUnavailable",
    "RetryPolicy",
    "attach",
    "execution_message",
    "open_queue",
    "outbox_row",
]


def open_queue(settings: Settings) -> Queue:
    """The queue these settings describe (connections are made on first use)."""
    if settings.redis_url and not settings.embedded:
        from beacon.queue.streams import RedisStreamsQueue

        return RedisStreamsQueue(
            settings.redis_url, prefix=settings.redis_prefix, lease_s=settings.worker_lease_s
        )
    return InProcessQueue(lease_s=settings.worker_lease_s)


def attach(runtime: Runtime) -> None:
    """Give ``runtime`` its queue, and health checks for the queue and the region workers."""
    queue = open_queue(runtime.settings)
    runtime.queue = queue
    runtime.extras["queue"] = queue  # closed by Runtime.stop

    async def queue_health() -> dict[str, Any]:
        if not await queue.ping():
            return {"status": "down", "kind": queue.kind}
        depth = {}
        for region in REGIONS:
            stats = await queue.stats(region)
            depth[region] = {
                "depth": stats.depth,
                "pending": stats.pending,
                "dead_letters": stats.dead_letters,
            }
        return {"status": "up", "kind": queue.kind, "regions": depth}

    async def workers_health() -> dict[str, Any]:
        from beacon.worker.registry import regions_without_workers

        waiting = await regions_without_workers(runtime.db, lease_s=runtime.settings.worker_lease_s)
        if waiting:
            return {
                "status": "degraded",
                "detail": "work is waiting in regions with no live worker",
                "regions_without_workers": waiting,
            }
        return {"status": "up"}

    runtime.health_checks["queue"] = queue_health
    runtime.health_checks["workers"] = workers_health
