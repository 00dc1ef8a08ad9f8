"""The runtime: the long-lived services one process holds, built once from Settings.

The API, the workers, the relay and the CLI all get their database, keys and queue from here, so
there is one place that decides "embedded or service mode".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.config import Settings
from beacon.keys import Ed25519Key, TrustedKeys, load_or_create_key
from beacon.store import Database

if TYPE_CHECKING:
    from beacon.queue.base import Queue
    from beacon.transparency.log import LeafInput

log = logging.getLogger("beacon.runtime")


class LogAppender(Protocol):
    """What the pipeline needs from the transparency log."""

    async def append(self, conn: AsyncConnection, *, kind: str, ref: str, entry: bytes) -> int:
        """Append ``entry`` (leaf data) inside the caller's transaction; return its leaf index.

        Idempotent on ``ref``: appending the same ref again returns the existing index.
        """
        ...

    async def append_many(self, conn: AsyncConnection, items: Sequence[LeafInput]) -> list[int]:
        """Append entries in order, in one pass over the tree; return each one's leaf index (as ``append``)."""
        ...


JobFinalizer = Callable[["Runtime", str], Awaitable[None]]
"""Runs after a job became terminal (diff report, bundle, …); must be idempotent."""

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]
"""Returns ``{"status": "up" | "down" | "degraded", ...facts}`` for one component of /health."""


@dataclass
class Runtime:
    settings: Settings
    db: Database
    trusted_keys: TrustedKeys
    runner_key: Ed25519Key
    """Signs receipts, checkpoints, diff reports and harness receipts."""
    tlog: LogAppender | None = None
    """The transparency log (set by beacon.transparency at start)."""
    queue: Queue | None = None
    """The region queues (set by beacon.queue at start; closed with the other extras)."""
    job_finalizers: list[tuple[int, str, JobFinalizer]] = field(default_factory=list)
    """(order, name, finalizer): run in ascending order after a job is terminal (diffs 10, bundle 20)."""
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    """Components reported by /health and /health/ready."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Services registered by subsystems at start (queue, log, content store, …); see ``start``."""

    @classmethod
    async def start(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        if migrate:
            await db.migrate()
        runner_key = load_or_create_key(settings.runner_key_file or settings.data_dir / "runner-key.json")
        runtime = cls(
            settings=settings,
            db=db,
            trusted_keys=TrustedKeys.from_entries(settings.trusted_key_entries),
            runner_key=runner_key,
        )
        from beacon.transparency import attach as attach_transparency

        attach_transparency(runtime)  # runtime.tlog, content store, bundle finalizer, checkpoint publisher
        from beacon.queue import attach as attach_queue

        attach_queue(runtime)  # runtime.queue, queue and worker health checks
        from beacon.benchmark.report import attach as attach_diff_reports

        attach_diff_reports(runtime)  # the difference-report job finalizer (order 10)
        log.info(
            "runtime started",
            extra={
                "database": db.dialect,
                "runner_kid": runner_key.kid,
                "trusted_keys": len(runtime.trusted_keys),
            },
        )
        return runtime

    def add_finalizer(self, order: int, name: str, finalizer: JobFinalizer) -> None:
        self.job_finalizers.append((order, name, finalizer))
        self.job_finalizers.sort(key=lambda item: item[0])

    async def stop(self) -> None:
        for name, service in reversed(list(self.extras.items())):
            close = getattr(service, "aclose", None) or getattr(service, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if hasattr(result, "__await__"):
                    await result
            except Exception:
                log.exception("error while closing %s", name)
        await self.db.close()
