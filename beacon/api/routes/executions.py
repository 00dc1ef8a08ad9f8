"""Executions and their receipts; cancelling a job.

* ``GET /api/v1/executions?limit&offset`` — newest first, with ``total`` (the original's shape).
* ``GET /api/v1/executions/{id}`` — one execution with its output and receipt.
* ``GET /api/v1/executions/{id}/receipt`` — the signed receipt, verbatim.
* ``POST /api/v1/jobs/{id}/cancel`` (operator) — nothing not yet started starts; running attempts
  are stopped; answers 200 once no backend call of the job continues, 202 if some still are.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from beacon.api.auth import Principal, Role, require
from beacon.api.deps import get_pipeline, get_runtime
from beacon.api.openapi import problem_responses
from beacon.api.params import ExecutionId, JobId, JobIdFilter, RegionFilter, region_filter
from beacon.api.problems import Problem, request_id_of
from beacon.clock import iso_time
from beacon.runtime import Runtime
from beacon.store.tables import executions
from beacon.worker.control import JobAlreadyTerminal, JobNotFound, cancel_job
from beacon.worker.lifecycle import ExecutionStatus
from beacon.worker.service import Pipeline

router = APIRouter(tags=["executions"])


_TIMES = ("queued_at", "started_at", "finished_at", "created_at", "updated_at")
_SUMMARY = (
    "id",
    "job_id",
    "region",
    "model",
    "question_id",
    "variant",
    "status",
    "attempt",
    "provider_id",
    "served_region",
    "backend",
    "error_code",
    "receipt_id",
    "leaf_index",
    *_TIMES,
)


class ExecutionOut(BaseModel):
    """One execution in full: its output, timings and signed receipt."""

    id: str
    job_id: str
    region: str
    model: str
    question_id: str
    variant: str = Field(description="System-prompt variant: neutral | region")
    status: str
    attempt: int = Field(description="Attempts started; the receipt belongs to the last one")
    backend: str | None
    backend_version: str | None
    provider_id: str | None
    served_region: str | None
    model_digest: str | None
    output: str | None
    output_hash: str | None
    tokens_in: int | None
    tokens_out: int | None
    timings: dict[str, Any] | None
    error_code: str | None
    error_detail: str | None
    classification: dict[str, Any] | None
    receipt_id: str | None
    receipt: dict[str, Any] | None
    leaf_index: int | None = Field(description="The receipt's index in the transparency log")
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    created_at: str | None
    updated_at: str | None


class ExecutionSummary(BaseModel):
    id: str
    job_id: str
    region: str
    model: str
    question_id: str
    variant: str
    status: str
    attempt: int
    provider_id: str | None
    served_region: str | None
    backend: str | None
    error_code: str | None
    receipt_id: str | None
    has_receipt: bool
    leaf_index: int | None
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    completed_at: str | None = Field(description="Same as finished_at (the original's portal read this name)")
    created_at: str | None
    updated_at: str | None


class ExecutionPage(BaseModel):
    executions: list[ExecutionSummary]
    total: int = Field(description="Executions matching the filters, all pages")
    limit: int
    offset: int


class CancelAnswer(BaseModel):
    job_id: str
    status: str = Field(description="The job's status now (cancelled once nothing runs any more)")
    cancelled_executions: list[str] = Field(description="Ended by this request")
    still_running: list[str] = Field(description="Being stopped by their workers (202 only)")
    already_requested: bool


def execution_resource(row: Any) -> dict[str, Any]:
    """An execution row as the API shows it (``ExecutionOut``; the jobs route shows the same)."""
    out = {str(name): value for name, value in row._mapping.items() if name != "worker_id"}
    for name in _TIMES:
        out[name] = iso_time(out.get(name))
    return out


def _summary(row: Any) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in _SUMMARY}
    for name in _TIMES:
        out[name] = iso_time(out[name])
    out["completed_at"] = out["finished_at"]
    out["has_receipt"] = row.receipt_id is not None
    return out


@router.get("/api/v1/executions", summary="Executions, newest first", response_model=ExecutionPage)
async def list_executions(
    runtime: Runtime = Depends(get_runtime),
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    job_id: JobIdFilter = None,
    status: Annotated[ExecutionStatus | None, Query(description="Only executions in this status")] = None,
    region: RegionFilter = None,
) -> Response:
    filters = []
    if job_id is not None:
        filters.append(executions.c.job_id == job_id)
    if status is not None:
        filters.append(executions.c.status == str(status))
    if (chosen := region_filter(region)) is not None:
        filters.append(executions.c.region == chosen)
    query = (
        sa.select(*(executions.c[name] for name in _SUMMARY))
        .where(*filters)
        .order_by(executions.c.created_at.desc(), executions.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    async with runtime.db.connect() as conn:
        total = int(
            await conn.scalar(sa.select(sa.func.count()).select_from(executions).where(*filters)) or 0
        )
        rows = (await conn.execute(query)).all()
    body = {"executions": [_summary(row) for row in rows], "total": total, "limit": limit, "offset": offset}
    return Response(orjson.dumps(body), media_type="application/json")


async def _execution_row(runtime: Runtime, execution_id: str) -> Any:
    async with runtime.db.connect() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.id == execution_id))).first()
    if row is None:
        raise Problem(
            404, "execution_not_found", "Execution not found", f"no execution with id {execution_id!r}"
        )
    return row


@router.get(
    "/api/v1/executions/{execution_id}",
    summary="One execution with its output and receipt",
    response_model=ExecutionOut,
    responses=problem_responses(404),
)
async def get_execution(execution_id: ExecutionId, runtime: Runtime = Depends(get_runtime)) -> Response:
    row = await _execution_row(runtime, execution_id)
    return Response(orjson.dumps(execution_resource(row)), media_type="application/json")


@router.get(
    "/api/v1/executions/{execution_id}/details",
    summary="Alias of GET /api/v1/executions/{id} (the original's path)",
    response_model=ExecutionOut,
    responses=problem_responses(404),
    include_in_schema=False,
)
async def get_execution_details(
    execution_id: ExecutionId, runtime: Runtime = Depends(get_runtime)
) -> Response:
    return await get_execution(execution_id, runtime)


@router.get(
    "/api/v1/executions/{execution_id}/receipt",
    summary="The execution's signed receipt, verbatim",
    responses={
        200: {"description": "The receipt (verify it with the key from GET /api/v1/keys)"},
        **problem_responses(404),
    },
)
async def get_receipt(execution_id: ExecutionId, runtime: Runtime = Depends(get_runtime)) -> Response:
    row = await _execution_row(runtime, execution_id)
    if row.receipt is None:
        raise Problem(
            404,
            "receipt_not_ready",
            "No receipt yet",
            f"execution {execution_id} is {row.status}; its receipt is issued when it ends",
            status_now=row.status,
        )
    return Response(orjson.dumps(row.receipt), media_type="application/json")


@router.post(
    "/api/v1/jobs/{job_id}/cancel",
    summary="Cancel a job (operator)",
    response_model=CancelAnswer,
    responses={
        202: {"description": "Cancelled, but some attempts are still being stopped by their workers"},
        **problem_responses(404, 409),
    },
)
async def cancel(
    request: Request,
    job_id: JobId,
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
    runtime: Runtime = Depends(get_runtime),
    pipeline: Pipeline | None = Depends(get_pipeline),
) -> Response:
    """Stop the job: queued executions end ``cancelled`` at once (with receipts); running ones are
    interrupted by their workers. Cancelling a cancelled job again is harmless."""
    try:
        result = await cancel_job(
            runtime,
            runtime.queue,
            job_id,
            finalizers=pipeline.finalizers if pipeline is not None else None,
            actor=principal.actor,
            request_id=request_id_of(request),
            wait_s=runtime.settings.cancel_wait_s,
        )
    except JobNotFound:
        raise Problem(404, "job_not_found", "Job not found", f"no job with id {job_id!r}") from None
    except JobAlreadyTerminal as exc:
        raise Problem(
            409,
            "job_terminal",
            "The job has already ended",
            f"job {job_id} is {exc.status}",
            job_status=exc.status,
        ) from None
    body = {
        "job_id": result.job_id,
        "status": result.status,
        "cancelled_executions": result.cancelled,
        "still_running": result.running,
        "already_requested": result.already_requested,
    }
    return Response(
        orjson.dumps(body), status_code=202 if result.running else 200, media_type="application/json"
    )
