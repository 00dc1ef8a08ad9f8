"""The runtime: the long-lived services one process holds.

The API, the workers, the relay and the CLI all get their database, keys, queue and log from one
:class:`Runtime`. It is a plain record: :func:`beacon.boot.open_runtime` (the composition root)
builds it from Settings and closes what it holds; this module imports none of the services.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beacon.config import Settings
from beacon.keys import Ed25519Key, TrustedKeys
from beacon.store import Database

if TYPE_CHECKING:  # the services' types; none of their modules imports this one
    from beacon.admin_config import AdminConfigStore
    from beacon.queue.base import Queue
    from beacon.transparency.ipfs import ContentStore
    from beacon.transparency.log import TransparencyLog


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
    queue: Queue
    """The region queues (Redis Streams, or the in-process queue when embedded)."""
    tlog: TransparencyLog
    """The transparency log: receipts and reports are appended inside the caller's transaction."""
    content: ContentStore
    """Bundles and other documents by CID (pinned in kubo when ``IPFS_URL`` is set)."""
    admin_config: AdminConfigStore
    """The versioned admin configuration (cached, cheap to read)."""
    job_finalizers: Sequence[tuple[str, JobFinalizer]]
    """(name, finalizer), in the order they run after a job is terminal (see ``beacon.boot.JOB_FINALIZERS``)."""
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    """Components reported by /health and /health/ready."""
