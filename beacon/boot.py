"""The composition root: builds one process's services in order and closes them in reverse.

Every runner process (``beacon serve``, ``beacon worker``, the API factory, tests) gets its
:class:`Runtime` from :func:`open_runtime`. Maintenance commands that need the database alone
(``beacon db upgrade``, ``beacon backup`` / ``restore``) open just that.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from beacon.admin_config import AdminConfigStore
from beacon.benchmark.report import finalize_difference_report
from beacon.config import REGIONS, Settings
from beacon.keys import TrustedKeys, load_or_create_key
from beacon.queue import Queue, open_queue
from beacon.runtime import HealthCheck, JobFinalizer, Runtime
from beacon.store import Database
from beacon.transparency.bundle import finalize_job_bundle
from beacon.transparency.ipfs import ContentStore, KuboClient
from beacon.transparency.log import TransparencyLog
from beacon.transparency.note import Signer
from beacon.worker.presence import regions_without_workers

log = logging.getLogger("beacon.boot")

JOB_FINALIZERS: tuple[tuple[str, JobFinalizer], ...] = (
    ("diff-report", finalize_difference_report),
    ("bundle", finalize_job_bundle),  # after the report: the bundle references it
)
"""What runs after a job is terminal, in this order (a failure holds back the ones after it)."""


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    migrate: bool = True,
    publish_checkpoints: bool = True,
    job_finalizers: Sequence[tuple[str, JobFinalizer]] = JOB_FINALIZERS,
) -> AsyncIterator[Runtime]:
    """The process's runtime: database (migrated unless ``migrate`` is False), keys, transparency log,
    content store, queue, admin config and job finalizers; closed in reverse order on exit.

    ``publish_checkpoints`` starts the log's background checkpoint publisher; ``job_finalizers``
    replaces :data:`JOB_FINALIZERS` (a benchmark of the pipeline alone passes none).
    """
    async with AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        stack.push_async_callback(db.close)
        if migrate:
            await db.migrate()
        runner_key = load_or_create_key(settings.runner_key_file or settings.data_dir / "runner-key.json")
        tlog = TransparencyLog(
            db,
            Signer(settings.log_origin, runner_key),
            interval_s=settings.checkpoint_interval_s,
            max_leaves=settings.checkpoint_max_leaves,
        )
        stack.push_async_callback(tlog.aclose)
        content = ContentStore(db, kubo=KuboClient(settings.ipfs_url) if settings.ipfs_url else None)
        stack.push_async_callback(content.aclose)
        queue = open_queue(settings)
        stack.push_async_callback(queue.aclose)
        runtime = Runtime(
            settings=settings,
            db=db,
            trusted_keys=TrustedKeys.from_entries(settings.trusted_key_entries),
            runner_key=runner_key,
            queue=queue,
            tlog=tlog,
            content=content,
            admin_config=AdminConfigStore(db, settings),
            job_finalizers=tuple(job_finalizers),
        )
        runtime.health_checks.update(
            transparency_log=tlog.health,
            content_store=content.health,
            queue=_queue_health(queue),
            workers=_workers_health(db, lease_s=settings.worker_lease_s),
        )
        if publish_checkpoints:
            tlog.start()
        log.info(
            "runtime started",
            extra={
                "database": db.dialect,
                "runner_kid": runner_key.kid,
                "trusted_keys": len(runtime.trusted_keys),
            },
        )
        yield runtime


def _queue_health(queue: Queue) -> HealthCheck:
    async def check() -> dict[str, Any]:
        if not await queue.ping():
            return {"status": "down", "kind": queue.kind}
        depth = {}
        for region in REGIONS:
            stats = await queue.stats(region)
            # dead letters are the database's (0021): GET /admin/ops/queues and /dead-letters count them
            depth[region] = {"depth": stats.depth, "pending": stats.pending}
        return {"status": "up", "kind": queue.kind, "regions": depth}

    return check


def _workers_health(db: Database, *, lease_s: float) -> HealthCheck:
    async def check() -> dict[str, Any]:
        waiting = await regions_without_workers(db, lease_s=lease_s)
        if waiting:
            return {
                "status": "degraded",
                "detail": "work is waiting in regions with no live worker",
                "regions_without_workers": waiting,
            }
        return {"status": "up"}

    return check
