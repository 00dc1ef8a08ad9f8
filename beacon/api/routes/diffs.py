"""Cross-region difference reports: list, read, (re)generate, and the original portal's view.

Reads need no token (as the original's). ``GET /api/v1/diffs/{job_id}`` returns the signed report
verbatim, so a client can check its signature with the runner key (``GET /api/v1/keys``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.api.auth import Principal, Role, require
from beacon.api.deps import get_runtime
from beacon.api.openapi import problem_responses
from beacon.api.params import JobId
from beacon.api.problems import Problem
from beacon.benchmark.classify import SUCCESS_STATUS
from beacon.benchmark.embeddings import EmbeddingModelUnavailable
from beacon.benchmark.registry import definition_for, not_compared
from beacon.benchmark.report import ANALYSIS_TYPE, create_difference_report
from beacon.clock import iso_time
from beacon.runtime import Runtime
from beacon.store.tables import diff_reports, executions, jobs

router = APIRouter(tags=["diffs"])


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _completed_regions_query() -> Any:
    """Jobs with completed executions in at least two regions, and those regions' count."""
    return (
        sa.select(executions.c.job_id, sa.func.count(sa.distinct(executions.c.region)).label("regions"))
        .where(executions.c.status == SUCCESS_STATUS)
        .group_by(executions.c.job_id)
        .having(sa.func.count(sa.distinct(executions.c.region)) >= 2)
        .subquery("multi_region")
    )


@router.get(
    "/api/v1/diffs",
    summary="Jobs with answers from at least two regions, newest first, with their report's state",
)
async def list_diffs(
    runtime: Runtime = Depends(get_runtime),
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    multi = _completed_regions_query()
    comparable = multi.join(jobs, jobs.c.id == multi.c.job_id)
    analysed = jobs.c.benchmark.not_in(not_compared())
    query = (
        sa.select(
            jobs.c.id.label("job_id"),
            jobs.c.created_at.label("job_created_at"),
            jobs.c.status.label("job_status"),
            diff_reports.c.id,
            diff_reports.c.status,
            diff_reports.c.regions,
            diff_reports.c.analysis_type,
            diff_reports.c.leaf_index,
            diff_reports.c.created_at,
        )
        .select_from(comparable.outerjoin(diff_reports, diff_reports.c.job_id == multi.c.job_id))
        .where(analysed)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    async with runtime.db.connect() as conn:
        total = int(
            (
                await conn.execute(sa.select(sa.func.count()).select_from(comparable).where(analysed))
            ).scalar_one()
        )
        rows = (await conn.execute(query)).all()
        pending = [r.job_id for r in rows if r.id is None]
        regions: dict[str, set[str]] = defaultdict(set)
        if pending:
            for job_id, region in (
                await conn.execute(
                    sa.select(executions.c.job_id, executions.c.region)
                    .where(executions.c.job_id.in_(pending), executions.c.status == SUCCESS_STATUS)
                    .distinct()
                )
            ).all():
                regions[job_id].add(region)
    diffs = []
    for row in rows:
        diffs.append(
            {
                "id": row.id,
                "job_id": row.job_id,
                "regions": list(row.regions) if row.id is not None else sorted(regions[row.job_id]),
                "analysis_type": row.analysis_type or ANALYSIS_TYPE,
                # "pending": the job has not finished (or its report is still being written)
                "status": row.status if row.id is not None else "pending",
                "job_status": row.job_status,
                "created_at": iso_time(row.created_at if row.id is not None else row.job_created_at),
                "leaf_index": row.leaf_index,
                "view_url": f"/api/v1/diffs/{row.job_id}",
            }
        )
    return _json({"diffs": diffs, "limit": limit, "offset": offset, "total": total})


async def _job(conn: AsyncConnection, job_id: str, *columns: Any) -> Any:
    """The job's ``columns``; 404 ``job_not_found`` when there is no such job."""
    job = (await conn.execute(sa.select(*columns).where(jobs.c.id == job_id))).first()
    if job is None:
        raise Problem(404, "job_not_found", "Job not found", f"no job with id {job_id!r}")
    return job


async def _report_row(conn: AsyncConnection, job_id: str) -> Any:
    """The job's stored report row; 404 saying why when it has none (yet)."""
    row = (await conn.execute(sa.select(diff_reports).where(diff_reports.c.job_id == job_id))).first()
    if row is not None:
        return row
    job = await _job(conn, job_id, jobs.c.status, jobs.c.benchmark)
    benchmark = definition_for(job.benchmark)
    if not benchmark.compared:
        why = f"ran the {job.benchmark} benchmark, which no difference report compares" + (
            "" if benchmark.calls_model else ": it calls no model, so there is nothing to compare"
        )
    else:
        why = (
            f"is {job.status}; a report is written when the job has finished with answers "
            "from at least two regions"
        )
    raise Problem(
        404,
        "diff_not_found",
        "No difference report for this job",
        f"job {job_id!r} {why}",
        job_status=job.status,
    )


@router.get(
    "/api/v1/diffs/{job_id}",
    summary="The signed difference report of a job (verbatim; verify it with the runner key)",
    responses=problem_responses(404),
)
async def get_diff(job_id: JobId, runtime: Runtime = Depends(get_runtime)) -> Response:
    async with runtime.db.connect() as conn:
        row = await _report_row(conn, job_id)
    headers = {"Beacon-Report-Id": row.id}
    if row.leaf_index is not None:
        headers["Beacon-Transparency-Leaf"] = str(row.leaf_index)
    return _json(row.report, headers=headers)


@router.post(
    "/api/v1/diffs/{job_id}",
    summary="Write a finished job's difference report now (idempotent; operators)",
    responses=problem_responses(404, 409, 503),
)
async def create_diff(
    job_id: JobId,
    runtime: Runtime = Depends(get_runtime),
    _: Principal = Depends(require(Role.OPERATOR)),
) -> Response:
    async with runtime.db.connect() as conn:
        job = await _job(conn, job_id, jobs.c.status, jobs.c.finished_at)
    if job.finished_at is None:
        raise Problem(
            409,
            "job_not_finished",
            "The job has not finished",
            f"job {job_id!r} is {job.status}; its report is written when it finishes",
            job_status=job.status,
        )
    try:
        report = await create_difference_report(runtime, job_id)
    except EmbeddingModelUnavailable as exc:
        raise Problem(503, "analysis_unavailable", "The embedding model is not available", str(exc)) from exc
    if report is None:
        raise Problem(
            409,
            "not_comparable",
            "Nothing to compare",
            "a report needs completed answers from at least two regions (and a benchmark that calls a model)",
        )
    return _json(report, status=201)


# --- the original portal's view ---------------------------------------------------------------------


def _portal_analysis(report: dict[str, Any]) -> dict[str, Any]:
    """The original's ``analysis`` object, computed from the report (reference §3.5, §2.2)."""
    metrics = report["metrics"]
    key_differences = []
    for item in report["items"]:
        labels = {region: c["label"] for region, c in item["classes"].items()}
        if len(set(labels.values())) > 1:
            withheld = any(label in ("refusal", "evasive") for label in labels.values())
            key_differences.append(
                {
                    "dimension": f"{item['question_id']} ({item['model']}, {item['variant']} prompt)",
                    "variations": labels,
                    "severity": "high" if withheld else "medium",
                    "description": "regions answered in different classes: "
                    + ", ".join(f"{r} {label}" for r, label in sorted(labels.items())),
                }
            )
    risk_assessment = []
    for finding in report["findings"]:
        if finding["level"] not in ("warning", "alert"):
            continue
        kind = {
            "censorship_rate": "censorship",
            "withholding_spread": "censorship",
            "bias_variance": "bias",
            "narrative_divergence": "bias",
            "high_salience_comparisons": "bias",
        }.get(finding["metric"])
        if kind is None:
            continue
        regions = sorted(
            r
            for r, s in report["region_scores"].items()
            if kind != "censorship" or (s["withholding_rate"] or 0) > 0
        )
        risk_assessment.append(
            {
                "type": kind,
                "severity": "high" if finding["level"] == "alert" else "medium",
                "description": finding["text"],
                "regions": regions,
                "metric": finding["metric"],
                "value": finding["value"],
            }
        )
    return {
        "bias_variance": metrics["bias_variance"],
        "censorship_rate": metrics["censorship_rate"],
        "factual_consistency": metrics["factual_consistency"],
        "narrative_divergence": metrics["narrative_divergence"],
        "key_differences": key_differences,
        "risk_assessment": risk_assessment,
        "summary": report["summary"],
        "recommendation": report["recommendation"]["text"],
        "recommendation_level": report["recommendation"]["level"],
        "region_scores": report["region_scores"],
        "report_id": report["id"],
        "status": report["status"],
    }


@router.get(
    "/api/v1/executions/{job_id}/cross-region-diff",
    summary="The original portal's cross-region view of a job (executions + analysis from the report)",
    responses=problem_responses(404),
)
async def cross_region_diff(job_id: JobId, runtime: Runtime = Depends(get_runtime)) -> Response:
    async with runtime.db.connect() as conn:
        row = await _report_row(conn, job_id)
        rows = (
            await conn.execute(
                sa.select(
                    executions.c.id,
                    executions.c.region,
                    executions.c.model,
                    executions.c.question_id,
                    executions.c.variant,
                    executions.c.provider_id,
                    executions.c.status,
                    executions.c.started_at,
                    executions.c.finished_at,
                    executions.c.created_at,
                    executions.c.output,
                    executions.c.classification,
                )
                .where(executions.c.job_id == job_id)
                .order_by(
                    executions.c.region, executions.c.model, executions.c.question_id, executions.c.variant
                )
            )
        ).all()
    report = row.report
    body = {
        "job_id": job_id,
        "total_regions": len({r.region for r in rows}),
        "executions": [
            {
                "id": r.id,
                "region": r.region,
                "model_id": r.model,
                "question_id": r.question_id,
                "variant": r.variant,
                "provider_id": r.provider_id,
                "status": r.status,
                "started_at": iso_time(r.started_at),
                "completed_at": iso_time(r.finished_at),
                "created_at": iso_time(r.created_at),
                "output": r.output,
                "classification": (r.classification or {}).get("label"),
            }
            for r in rows
        ],
        "analysis": _portal_analysis(report),
        "generated_at": report["generated_at"],
    }
    return _json(body)
