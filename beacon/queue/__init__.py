"""The queue: transactional outbox relay, Redis Streams region queues, the in-process queue.

``open_queue(settings)`` picks the implementation: Redis Streams when ``REDIS_URL`` is set and the
runner is not embedded, the in-process queue otherwise. Both satisfy :class:`Queue`.
"""

from __future__ import annotations

from beacon.config import Settings
from beacon.queue.base import ControlEvent, Delivery, Queue, QueueStats, QueueUnavailable
from beacon.queue.inprocess import InProcessQueue
from beacon.queue.message import Message, MessageError, execution_message, outbox_row
from beacon.queue.retry import RetryPolicy

__all__ = [
    "ControlEvent",
    "Delivery",
    "InProcessQueue",
    "Message",
    "MessageError",
    "Queue",
    "QueueStats",
    "QueueUnavailable",
    "RetryPolicy",
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
