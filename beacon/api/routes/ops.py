"""Operations: the Day-1 plan's emergency procedures as endpoints (``docs/operations.md``).

| endpoint                                     | role     | what it does                                   |
|----------------------------------------------|----------|------------------------------------------------|
| POST /admin/ops/pause, /admin/ops/resume     | admin    | refuse / accept new submissions (queue drains) |
| GET  /admin/ops/queues                       | operator | per region: depth, pending, oldest age, dead   |
| GET  /admin/ops/dead-letters                 | operator | dead letters with their reasons                |
| POST /admin/ops/dead-letters/requeue         | operator | publish them again (unfinished executions)     |
| POST /admin/ops/dead-letters/purge           | admin    | forget them                                    |
| GET  /admin/ops/workers                      | operator | live workers (heartbeats), what each runs      |
| POST /admin/ops/workers/{id}/drain           | operator | finish current work, take no more, stop        |
| POST /admin/ops/workers/{id}/stop            | operator | hand current work back now, stop               |
| POST /admin/ops/workers/{id}/start           | operator | start a stopped in-process worker again        |
| POST /admin/ops/backup                       | admin    | download a backup (database + queue state)     |

Every change is written to the audit log with the actor (role and token fingerprint).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import ConfigDict, Field, field_validator
from starlette.background import BackgroundTask

from beacon import audit
from beacon.api.auth import Principal, Role, require
from beacon.api.deps import get_pipeline, get_runtime
from beacon.api.openapi import problem_responses
from beacon.api.params import (
    REGION_PATTERN,
    RegionFilter,
    RequestBody,
    WorkerId,
    json_integers,
    region_filter,
)
from beacon.api.problems import Problem, request_id_of
from beacon.clock import iso_time
from beacon.config import REGIONS
from beacon.queue.base import ControlEvent, QueueUnavailable
from beacon.queue.relay import OutboxRelay
from beacon.runtime import Runtime
from beacon.store import now
from beacon.store.tables import dead_letters, executions
from beacon.worker import dead_letters as dead_letter_records
from beacon.worker.presence import WorkerState, list_workers, set_worker_state
from beacon.worker.service import Pipeline

router = APIRouter(prefix="/admin/ops", tags=["operations"])

Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


class PauseBody(RequestBody):
    reason: str | None = Field(None, max_length=500, description="Why (recorded in the audit log)")


class DeadLetterSelection(RequestBody):
    """Name the dead letters: ``ids``, or a ``region`` (or both: those ids in that region)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["ids"], "properties": {"ids": {"type": "array"}}},
                {"required": ["region"], "properties": {"region": {"type": "string"}}},
            ]
        }
    )

    ids: list[Annotated[int, Field(ge=1, le=2**53)]] | None = Field(
        None, max_length=10_000, description="Dead-letter ids (from the list)"
    )
    region: str | None = Field(None, pattern=REGION_PATTERN, description="Every dead letter of this region")

    _integers = field_validator("ids", mode="before")(json_integers)


async def _audit(
    runtime: Runtime, request: Request, principal: Principal, action: str, target: str, detail: dict[str, Any]
) -> None:
    async with runtime.db.begin() as conn:
        await audit.record(
            conn,
            actor=principal.actor,
            action=action,
            target=target,
            detail=detail,
            request_id=request_id_of(request),
        )


# --- submissions ------------------------------------------------------------------------------------
async def _set_paused(
    runtime: Runtime, request: Request, principal: Principal, paused: bool, reason: str | None
) -> dict[str, Any]:
    version = await runtime.admin_config.update(
        {"submissions_paused": paused}, actor=principal.actor, request_id=request_id_of(request)
    )
    if reason:
        await _audit(
            runtime,
            request,
            principal,
            "ops.pause" if paused else "ops.resume",
            "submissions",
            {"reason": reason},
        )
    return {
        "submissions_paused": version.config.submissions_paused,
        "config_version": version.version,
        "reason": reason,
    }


@router.post("/pause", summary="Refuse new submissions (running jobs continue, the queue drains)")
async def pause(
    request: Request,
    principal: Admin,
    runtime: Runtime = Depends(get_runtime),
    body: Annotated[PauseBody | None, Body()] = None,
) -> dict[str, Any]:
    """The plan's "halt new submissions": ``POST /api/v1/jobs`` answers 503 ``submissions_paused``."""
    return await _set_paused(runtime, request, principal, True, body.reason if body else None)


@router.post("/resume", summary="Accept submissions again")
async def resume(
    request: Request,
    principal: Admin,
    runtime: Runtime = Depends(get_runtime),
    body: Annotated[PauseBody | None, Body()] = None,
) -> dict[str, Any]:
    return await _set_paused(runtime, request, principal, False, body.reason if body else None)


# --- queues -----------------------------------------------------------------------------------------
@router.get("/queues", summary="Queue depth, pending, oldest age and dead letters per region")
async def queues(_: Operator, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:

    queue = runtime.queue
    try:
        regions = [(await queue.stats(region)).as_dict() for region in REGIONS]
    except QueueUnavailable as exc:
        raise Problem(
            503, "dependency_unavailable", "The queue is unavailable", str(exc), headers={"Retry-After": "2"}
        ) from None
    relay = await OutboxRelay(runtime.db, queue).lag()
    async with runtime.db.connect() as conn:
        by_status: dict[str, dict[str, int]] = {region: {} for region in REGIONS}
        for row in await conn.execute(
            sa.select(executions.c.region, executions.c.status, sa.func.count().label("n")).group_by(
                executions.c.region, executions.c.status
            )
        ):
            by_status.setdefault(row.region, {})[row.status] = int(row.n)
        waiting = await dead_letter_records.waiting_by_region(conn)
    for stats in regions:
        stats["executions"] = by_status.get(stats["region"], {})
        stats["dead_letters"] = waiting.get(stats["region"], 0)
    return {
        "kind": queue.kind,
        "submissions_paused": (await runtime.admin_config.current()).config.submissions_paused,
        "relay": relay.as_dict(),
        "regions": regions,
    }


# --- dead letters -----------------------------------------------------------------------------------
def _dead_letter(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "region": row.region,
        "message_id": row.message_id,
        "execution_id": row.execution_id,
        "job_id": row.job_id,
        "reason": row.reason,
        "error_code": row.error_code,
        "attempts": row.attempts,
        "payload": row.payload,
        "created_at": iso_time(row.created_at),
        "requeued_at": iso_time(row.requeued_at),
    }


@router.get("/dead-letters", summary="Dead letters, newest first, with the reason of each")
async def list_dead_letters(
    _: Operator,
    runtime: Runtime = Depends(get_runtime),
    region: RegionFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    include_requeued: Annotated[bool, Query(description="Also those already requeued")] = False,
) -> dict[str, Any]:
    filters = []
    if (chosen := region_filter(region)) is not None:
        filters.append(dead_letters.c.region == chosen)
    if not include_requeued:
        filters.append(dead_letters.c.requeued_at.is_(None))
    async with runtime.db.connect() as conn:
        total = int(
            await conn.scalar(sa.select(sa.func.count()).select_from(dead_letters).where(*filters)) or 0
        )
        rows = (
            await conn.execute(
                sa.select(dead_letters)
                .where(*filters)
                .order_by(dead_letters.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return {
        "dead_letters": [_dead_letter(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def _selection(body: DeadLetterSelection) -> dead_letter_records.Selection:
    if body.ids is None and body.region is None:
        raise Problem(
            400, "selection_required", "Nothing selected", "name the dead letters: ids, or a region"
        )
    return dead_letter_records.Selection(body.ids, region_filter(body.region))


@router.post("/dead-letters/requeue", summary="Publish dead letters again")
async def requeue_dead_letters(
    request: Request,
    principal: Operator,
    body: DeadLetterSelection,
    runtime: Runtime = Depends(get_runtime),
    pipeline: Pipeline | None = Depends(get_pipeline),
) -> dict[str, Any]:
    """Requeue what can still run: a dead letter whose execution has ended (failed, with its
    receipt) is not run again — terminal is final; submit the job again instead."""
    outcome = await dead_letter_records.requeue(
        runtime.db, _selection(body), actor=principal.actor, request_id=request_id_of(request)
    )
    _wake_relay(pipeline)
    return {"requeued": outcome.requeued, "skipped": outcome.skipped}


@router.post("/dead-letters/purge", summary="Forget dead letters (admin)")
async def purge_dead_letters(
    request: Request, principal: Admin, body: DeadLetterSelection, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    purged = await dead_letter_records.purge(
        runtime.db, _selection(body), actor=principal.actor, request_id=request_id_of(request)
    )
    return {"purged": purged}


def _wake_relay(pipeline: Pipeline | None) -> None:
    if pipeline is not None and pipeline.relay is not None:
        pipeline.relay.wake()


# --- workers ----------------------------------------------------------------------------------------
@router.get("/workers", summary="Workers and their heartbeats (live ones unless ?all=true)")
async def workers(
    _: Operator,
    runtime: Runtime = Depends(get_runtime),
    all: Annotated[bool, Query(description="Also stopped and lost workers")] = False,
    region: RegionFilter = None,
) -> dict[str, Any]:
    listed = await list_workers(
        runtime.db, lease_s=runtime.settings.worker_lease_s, include_gone=all, region=region_filter(region)
    )
    return {"workers": listed, "lease_s": runtime.settings.worker_lease_s}


async def _change_worker(
    request: Request,
    principal: Principal,
    runtime: Runtime,
    worker_id: str,
    state: WorkerState,
    signal: str,
) -> dict[str, Any]:
    row = await set_worker_state(
        runtime.db, worker_id, state, only_from=[WorkerState.RUNNING, WorkerState.DRAINING]
    )
    if row is None:
        raise Problem(404, "worker_not_found", "Worker not found", f"no worker with id {worker_id!r}")
    if row.state == WorkerState.STOPPED:
        raise Problem(409, "worker_stopped", "The worker has stopped", f"worker {worker_id} already stopped")
    with contextlib.suppress(QueueUnavailable):  # the worker reads its state at its next heartbeat
        await runtime.queue.signal(ControlEvent(signal, worker_id=worker_id))
    await _audit(
        runtime, request, principal, f"ops.worker.{signal}", f"worker/{worker_id}", {"region": row.region}
    )
    return {"id": worker_id, "state": row.state, "region": row.region}


@router.post(
    "/workers/{worker_id}/drain",
    summary="Finish current work, take no more, then stop",
    responses=problem_responses(404, 409),
)
async def drain_worker(
    request: Request, worker_id: WorkerId, principal: Operator, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    return await _change_worker(request, principal, runtime, worker_id, WorkerState.DRAINING, "drain")


@router.post(
    "/workers/{worker_id}/stop",
    summary="Stop now: current work goes back to the queue for other workers",
    responses=problem_responses(404, 409),
)
async def stop_worker(
    request: Request, worker_id: WorkerId, principal: Operator, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    return await _change_worker(request, principal, runtime, worker_id, WorkerState.STOPPING, "stop")


@router.post(
    "/workers/{worker_id}/start",
    summary="Start a stopped in-process worker's region again (embedded mode)",
    status_code=202,
    responses=problem_responses(404, 409),
)
async def start_worker(
    request: Request,
    worker_id: WorkerId,
    principal: Operator,
    runtime: Runtime = Depends(get_runtime),
    pipeline: Pipeline | None = Depends(get_pipeline),
) -> dict[str, Any]:
    listed = await list_workers(runtime.db, lease_s=runtime.settings.worker_lease_s, include_gone=True)
    known = next((w for w in listed if w["id"] == worker_id), None)
    if known is None:
        raise Problem(404, "worker_not_found", "Worker not found", f"no worker with id {worker_id!r}")
    region = known["region"]
    if pipeline is None or not pipeline.manages(region):
        raise Problem(
            409,
            "not_supervised",
            "This runner does not start that worker",
            f"worker processes are started by their supervisor: run `beacon worker --region {region}` "
            "(systemd, Kubernetes, …)",
        )
    if not pipeline.start_region(region):
        raise Problem(
            409, "worker_running", "The region's worker is running", f"region {region} already has its worker"
        )
    await _audit(runtime, request, principal, "ops.worker.start", f"worker/{worker_id}", {"region": region})
    return {"region": region, "started": True}


# --- backup -----------------------------------------------------------------------------------------
@router.post(
    "/backup",
    summary="Download a backup of the database and queue state (admin)",
    response_class=FileResponse,
    responses={
        200: {
            "description": "A gzip-compressed JSON-lines backup (check it with `beacon restore --check FILE`)",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def backup(request: Request, principal: Admin, runtime: Runtime = Depends(get_runtime)) -> FileResponse:
    """The same file as ``beacon backup``; restore it with ``beacon restore FILE`` into an empty database."""
    from beacon.backup import write_backup

    handle, name = tempfile.mkstemp(prefix="beacon-backup-", suffix=".jsonl.gz")
    os.close(handle)
    path = Path(name)
    try:
        summary = await write_backup(runtime.db, runtime.queue, path)
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    await _audit(runtime, request, principal, "ops.backup", "database", {"counts": summary.counts})
    stamp = iso_time(now()) or "backup"
    return FileResponse(
        path,
        media_type="application/gzip",
        filename=f"beacon-backup-{stamp.replace(':', '').replace('.', '')}.jsonl.gz",
        background=BackgroundTask(asyncio.to_thread, path.unlink, True),
    )
