"""Jobs: submit a signed JobSpec, read one job (with its timeline and executions), list jobs.

``POST /api/v1/jobs`` reads the body itself: the signature is checked on the bytes as sent, before
any model sees them (see beacon.intake).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from beacon.api.deps import get_runtime
from beacon.api.openapi import add_component_schemas, problem_responses
from beacon.api.params import JOB_ID_PATTERN, Cursor, JobId
from beacon.api.problems import Problem, request_id_of
from beacon.api.routes.executions import ExecutionOut, execution_resource
from beacon.clock import iso_time
from beacon.intake import Intake, IntakeError
from beacon.models.jobspec import JobSpec
from beacon.runtime import Runtime
from beacon.store.tables import executions, job_events, jobs
from beacon.worker.lifecycle import JobStatus

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobAccepted(BaseModel):
    id: str
    job_id: str = Field(description="Same as id (the original's portal read either)")
    status: Literal["enqueued"]
    scheme: Literal["jcs", "go-strip", "portal-v1"] = Field(description="The signature scheme that verified")
    kid: str
    key_status: str
    spec_hash: str = Field(description="Hex SHA-256 of the verbatim submitted body")
    regions: list[str]
    executions: int = Field(description="Executions planned (region × model × question × prompt variant)")
    created_at: str
    unsigned_fields: list[str] | None = Field(
        None, description="Fields present but not covered by the signature (portal-v1: id, created_at)"
    )
    label: str | None = Field(
        None,
        description="The client's unsigned id (portal-v1), kept as a label: the runner named the job (id)",
    )
    links: dict[str, str]


class TimelineEvent(BaseModel):
    status: str
    at: str | None
    detail: dict[str, Any] | None


class JobSummary(BaseModel):
    id: str
    status: str
    benchmark: str
    scheme: str
    kid: str | None
    regions: list[str]
    total_executions: int
    created_at: str | None
    enqueued_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str | None


class JobDetail(JobSummary):
    spec: dict[str, Any] = Field(description="The normalised JobSpec (full shape, after verification)")
    spec_hash: str
    public_key: str
    error: Any | None
    bundle_cid: str | None
    cancel_requested: bool
    timeline: list[TimelineEvent]
    executions: list[ExecutionOut] | None = Field(None, description="Present with ?include=executions")


class JobList(BaseModel):
    jobs: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end")


_SUMMARY_COLUMNS = (
    "id",
    "status",
    "benchmark",
    "signature_scheme",
    "kid",
    "regions",
    "total_executions",
    "created_at",
    "enqueued_at",
    "started_at",
    "finished_at",
    "updated_at",
)
_TIME_COLUMNS = ("created_at", "enqueued_at", "started_at", "finished_at", "updated_at")


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "benchmark": row.benchmark,
        "scheme": row.signature_scheme,
        "kid": row.kid,
        "regions": row.regions,
        "total_executions": row.total_executions,
        **{name: iso_time(getattr(row, name)) for name in _TIME_COLUMNS},
    }


def _document_schemas() -> dict[str, Any]:
    """The accepted body: the JobSpec's full shape, or the Day-1 minimal form, plus its signature."""
    schema = JobSpec.model_json_schema(ref_template="#/components/schemas/JobSpec.{model}")
    defs = {f"JobSpec.{name}": d for name, d in schema.pop("$defs", {}).items()}
    properties = schema["properties"]
    properties["benchmark"] = {
        "anyOf": [properties["benchmark"], {"type": "string", "description": "Day-1 minimal form: the name"}]
    }
    properties["container"] = {
        "$ref": "#/components/schemas/JobSpec.Container",
        "description": "Day-1 minimal form: the container at top level",
    }
    for name in ("signature", "public_key"):
        properties[name] = {"type": "string", "description": "base64 (standard)"}
    schema["required"] = ["version", "benchmark", "signature", "public_key"]
    schema["title"] = "JobSpecDocument"
    schema["description"] = (
        "A signed JobSpec. The signature covers 'beacon-jobspec/v1' + LF + the RFC 8785 bytes of the document "
        "without signature and public_key (or a legacy scheme, see docs/signing.md); metadata.timestamp and "
        "metadata.nonce are required."
    )
    return {"JobSpecDocument": schema, **defs}


add_component_schemas(_document_schemas())
_JOB_DOCUMENT_SCHEMA = {"$ref": "#/components/schemas/JobSpecDocument"}
_EXAMPLE_DOCUMENT = {
    "id": "day1-minimal",
    "version": "1",
    "benchmark": "noop",
    "container": {"image": "noop"},
    "metadata": {"timestamp": "2025-08-30T17:17:00Z", "nonce": "9f1c2b7e4d3a5f60"},
    "public_key": "F7VGEf8dtKbcGDBe59WYY5/J+0V/onPZe2P5vQbAixY=",
    "signature": "<base64 Ed25519 signature of 'beacon-jobspec/v1' + LF + the RFC 8785 bytes of the document "
    "without signature and public_key>",
}


@router.post(
    "",
    status_code=202,
    summary="Submit a signed JobSpec",
    response_model=JobAccepted,
    responses={
        200: {"description": "Not used: an idempotent replay repeats the original 202"},
        **problem_responses(400, 409, 422, 503),
    },
    openapi_extra={
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Same key + same body replays the stored response; + another body → 422; "
                "while the first is still running → 409",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _JOB_DOCUMENT_SCHEMA, "example": _EXAMPLE_DOCUMENT}},
        },
    },
)
async def submit_job(request: Request) -> Response:
    """Verify the signature (jcs, go-strip, portal-v1), trust and freshness, then store and plan the job.

    202 means the job, its planned executions and their outbox rows are durable.
    """
    # The hot path reads its inputs directly (no per-request dependency solving); the header is
    # documented in openapi_extra.
    intake: Intake = request.app.state.intake
    body = await request.body()
    try:
        result = await intake.submit(
            body, idempotency_key=request.headers.get("idempotency-key"), request_id=request_id_of(request)
        )
    except IntakeError as exc:
        raise Problem(
            exc.status,
            exc.code,
            exc.title,
            exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            **exc.extensions,
        ) from None
    return Response(
        result.body, status_code=result.status, headers=result.headers, media_type="application/json"
    )


@router.get(
    "/{job_id}",
    summary="One job, its timeline, and optionally its executions with receipts",
    response_model=JobDetail,
    response_model_exclude_none=False,
    responses=problem_responses(404),
)
async def get_job(
    job_id: JobId,
    runtime: Runtime = Depends(get_runtime),
    include: Annotated[Literal["executions"] | None, Query(description="`executions` adds them")] = None,
) -> Response:
    async with runtime.db.connect() as conn:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        if row is None:
            raise Problem(404, "job_not_found", "Job not found", f"no job with id {job_id!r}")
        events = (
            await conn.execute(
                sa.select(job_events.c.status, job_events.c.at, job_events.c.detail)
                .where(job_events.c.job_id == job_id)
                .order_by(job_events.c.at, job_events.c.id)
            )
        ).all()
        rows = None
        if include == "executions":
            rows = (
                await conn.execute(
                    sa.select(executions)
                    .where(executions.c.job_id == job_id)
                    .order_by(
                        executions.c.region,
                        executions.c.model,
                        executions.c.question_id,
                        executions.c.variant,
                    )
                )
            ).all()
    body: dict[str, Any] = {
        **_summary(row),
        "spec": row.spec,
        "spec_hash": row.spec_hash,
        "public_key": row.public_key,
        "error": row.error,
        "bundle_cid": row.bundle_cid,
        "cancel_requested": bool(row.cancel_requested),
        "timeline": [{"status": e.status, "at": iso_time(e.at), "detail": e.detail} for e in events],
    }
    if rows is not None:
        body["executions"] = [execution_resource(r) for r in rows]
    return Response(orjson.dumps(body), media_type="application/json")


def _encode_cursor(created_at: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, job_id])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, job_id = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(created_at, int | float) or not isinstance(job_id, str):
            raise ValueError
        if not re.fullmatch(JOB_ID_PATTERN, job_id):  # a cursor is client input like any other
            raise ValueError
        return float(created_at), job_id
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise Problem(
            400, "invalid_cursor", "Invalid cursor", "pass back the next_cursor of a previous page unchanged"
        ) from None


@router.get("", summary="Jobs, newest first, with cursor pagination", response_model=JobList)
async def list_jobs(
    runtime: Runtime = Depends(get_runtime),
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
) -> Response:
    query = (
        sa.select(*(jobs.c[name] for name in _SUMMARY_COLUMNS))
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        created_at, last_id = _decode_cursor(cursor)
        query = query.where(
            sa.or_(
                jobs.c.created_at < created_at, sa.and_(jobs.c.created_at == created_at, jobs.c.id < last_id)
            )
        )
    if status is not None:
        query = query.where(jobs.c.status == str(status))
    async with runtime.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return Response(
        orjson.dumps({"jobs": [_summary(r) for r in page], "next_cursor": next_cursor}),
        media_type="application/json",
    )
