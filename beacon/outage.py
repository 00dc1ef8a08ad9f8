"""Telling an outage (retry later) from a bug (report now), and backing off through one.

One definition for the whole runner: workers, relay and sweeper wait an outage out; the API answers it
with a 503 problem (``beacon.api.problems``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

import sqlalchemy.exc
from redis import exceptions as redis_exc

from beacon.queue.base import QueueUnavailable

_OUTAGE_NAMES = frozenset(
    {
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "AdminShutdownError",
        "ConnectionFailureError",
        "PostgresConnectionError",
        "InterfaceError",
        "TooManyConnectionsError",
        "SerializationError",
        "DeadlockDetectedError",
    }
)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` means a backing service (database, Redis) is away or busy, however wrapped.

    Serialisation failures and deadlocks count too: the transaction is safe to run again.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            QueueUnavailable
            | ConnectionError
            | TimeoutError
            | redis_exc.ConnectionError
            | redis_exc.TimeoutError,
        ):
            return True
        if isinstance(current, OSError) and not isinstance(current, FileNotFoundError | PermissionError):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(current, sqlalchemy.exc.OperationalError) and "locked" in str(current).lower():
            return True  # SQLite: another process held the write lock past busy_timeout
        if type(current).__name__ in _OUTAGE_NAMES:
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class Backoff:
    """Exponential backoff with jitter for loops that wait out an outage."""

    base_s: float = 0.2
    max_s: float = 5.0
    failures: int = 0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("beacon.queue"))

    def reset(self) -> None:
        if self.failures:
            self.log.info("recovered after %d failed tries", self.failures)
        self.failures = 0

    async def wait(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        delay = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 10)) * random.uniform(0.5, 1.0)
        level = logging.WARNING if self.failures == 1 or self.failures % 10 == 0 else logging.DEBUG
        self.log.log(level, "%s unavailable (%s); retrying in %.2fs", what, _short(exc), delay)
        await asyncio.sleep(delay)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
