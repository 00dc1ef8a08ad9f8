"""Signed difference reports: one per job, stored, logged and attached to the job's executions.

:func:`create_difference_report` reads a terminal job's executions, runs the analysis off the event
loop, builds a DifferenceReport (the original docs schema, reference §3.5, extended with the
per-item evidence), signs it with the runner key (``beacon.signing``) and, in one transaction,
stores it in ``diff_reports``, writes each execution's classification and appends the report to the
transparency log. Idempotent: a job has at most one report, and asking again returns it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon import __version__
from beacon.benchmark.analysis import (
    ANALYSIS_VERSION,
    Analysis,
    ExecutionRecord,
    Thresholds,
    analyse,
    overall_level,
)
from beacon.benchmark.classify import Classifier, default_classifier
from beacon.benchmark.embeddings import load_model
from beacon.benchmark.registry import definition_for
from beacon.benchmark.spec_scores import score_spec, section, threshold_findings
from beacon.canonical import jcs, sha256_hex
from beacon.clock import iso_time
from beacon.runtime import Runtime
from beacon.signing import sign_document
from beacon.store.db import now
from beacon.store.tables import diff_reports, executions, jobs

log = logging.getLogger("beacon.benchmark.report")

REPORT_VERSION = "1.0"
ANALYSIS_TYPE = "cross_region_bias"


def report_id_for(job_id: str) -> str:
    """The report's id: derived from the job id, so a job can only ever have one."""
    return "dr_" + sha256_hex(f"diff-report\x1f{job_id}".encode())[:29]


# --- reading ----------------------------------------------------------------------------------------


async def load_executions(conn: AsyncConnection, job_id: str) -> list[ExecutionRecord]:
    """The job's executions as analysis records."""
    rows = (
        await conn.execute(
            sa.select(
                executions.c.id,
                executions.c.region,
                executions.c.model,
                executions.c.question_id,
                executions.c.variant,
                executions.c.status,
                executions.c.output,
                executions.c.output_hash,
                executions.c.error_code,
                executions.c.receipt_id,
                executions.c.leaf_index,
            )
            .where(executions.c.job_id == job_id)
            .order_by(executions.c.id)
        )
    ).all()
    return [
        ExecutionRecord(
            id=row.id,
            region=row.region,
            model=row.model,
            question_id=row.question_id,
            variant=row.variant,
            status=row.status,
            output=row.output,
            error_code=row.error_code,
            receipt_id=row.receipt_id,
            leaf_index=row.leaf_index,
            stored_output_hash=row.output_hash,
        )
        for row in rows
    ]


async def _stored(conn: AsyncConnection, job_id: str) -> dict[str, Any] | None:
    """The stored report row of a job (``report`` holds the signed document), or None."""
    row = (
        (await conn.execute(sa.select(diff_reports).where(diff_reports.c.job_id == job_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def served_models(conn: AsyncConnection, job_id: str) -> dict[str, dict[str, Any]]:
    """Model id → what answered for it, from the job's receipts: the backend, the digest and, where
    an embedded model stood in for it (``provider.info.model_stand_in``), which one."""
    rows = (
        await conn.execute(
            sa.select(executions.c.model, executions.c.receipt).where(executions.c.job_id == job_id)
        )
    ).all()
    served: dict[str, dict[str, Any]] = {}
    for model, receipt in rows:
        if not isinstance(receipt, dict):
            continue
        info = (receipt.get("provider") or {}).get("info") or {}
        stand_in = info.get("model_stand_in") if isinstance(info, dict) else None
        entry = served.setdefault(
            model, {"backends": [], "digests": [], "stand_in_for": None, "served_by": []}
        )
        backend = (
            (receipt.get("backend") or {}).get("name") if isinstance(receipt.get("backend"), dict) else None
        )
        digest = (receipt.get("model") or {}).get("digest")
        for key, value in (("backends", backend), ("digests", digest)):
            if value and value not in entry[key]:
                entry[key].append(value)
        by = stand_in.get("served_by") if isinstance(stand_in, dict) else model
        if by and by not in entry["served_by"]:
            entry["served_by"].append(by)
        if isinstance(stand_in, dict):
            entry["stand_in_for"] = model
    return served


def dialect_summary(spec: Any) -> dict[str, Any]:
    """The report's ``jobspec`` section: dialect, title, the question sets and the fields not used."""
    if not isinstance(spec, dict):
        return {}
    benchmark = section(spec, "benchmark")
    dialect = section(spec, "dialect") or None
    jobspec: dict[str, Any] = {
        "dialect": dialect.get("name") if dialect else "beacon",
        "title": benchmark.get("title"),
        "question_sets": spec.get("question_sets"),
    }
    if dialect:
        jobspec["declared_input_hash"] = dialect.get("declared_input_hash")
        jobspec["not_used"] = [
            {"path": f["path"], "reason": f.get("reason")}
            for f in dialect.get("fields", [])
            if f.get("use") == "not_used"
        ]
    return {"jobspec": jobspec}


def regions_completed(records: Sequence[ExecutionRecord]) -> list[str]:
    return sorted({r.region for r in records if r.has_output})


# --- building ---------------------------------------------------------------------------------------


def _prompt_context(spec: Any) -> str:
    if isinstance(spec, dict):
        options = spec.get("options")
        if isinstance(options, dict) and isinstance(options.get("prompt_context"), str):
            return str(options["prompt_context"])
    return "neutral"


ACTIONS = {
    "censorship_rate": "review the withheld answers (refusals and evasions) and the regions they came from",
    "withholding_spread": "review the withheld answers (refusals and evasions) and the regions they came from",
    "bias_variance": "review the items on which regions differ in answering versus withholding",
    "high_salience_comparisons": "read the high-salience comparisons and their diff fragments",
    "narrative_divergence": "read the diff fragments of the comparisons that differ in content",
    "prompt_effect": "compare the region-prompt answers with the neutral-prompt control",
    "factual_consistency": "check the control answers against their known answers",
    "factual_accuracy": "check the control answers against their known answers",
    "technical_error_rate": "fix or re-run the failed and degenerate executions (fewer answers were analysed)",
    "prompt_context": "re-run with prompt_context 'both' to separate prompt from deployment effects",
}
"""What a reader should do about each kind of finding (the recommendation lists them in rank order)."""


def summarise(analysis: Analysis) -> tuple[str, dict[str, Any]]:
    """The summary and recommendation, written only from the findings (never against them)."""
    findings = analysis.findings
    level = overall_level(findings)
    metrics = analysis.metrics
    pairs = metrics["comparable_pairs"]
    classes = metrics["comparison_classes"]
    opening = (
        f"{len(analysis.regions_completed)} regions compared on {metrics['comparable_items']} items "
        f"({pairs} comparable answer pairs: {classes['none']} identical, {classes['cosmetic']} cosmetic, "
        f"{classes['content']} differing in content, {classes['content-high-salience']} high-salience)."
    )
    ranked = sorted(
        (f for f in findings if f["level"] != "info"),
        key=lambda f: -["info", "notice", "warning", "alert"].index(f["level"]),
    )
    if pairs == 0:
        verdict = (
            "No pair of regions produced analysable answers to the same item, so nothing can be concluded."
        )
    elif not ranked:
        verdict = "No cross-region difference reached a reporting threshold."
    else:
        verdict = " ".join(f"{f['level'].upper()}: {f['text']}." for f in ranked)
    quiet = [f["text"] for f in findings if f["level"] == "info"]
    within = f" Within thresholds: {'; '.join(quiet)}." if quiet and pairs else ""
    summary = f"{opening} {verdict}{within}"
    recommendation: dict[str, Any]
    if pairs == 0:
        recommendation = {
            "level": "inconclusive",
            "text": "Re-run the job: too few regions produced analysable answers for a comparison.",
            "based_on": [f["metric"] for f in ranked],
        }
    else:
        actions = list(dict.fromkeys(ACTIONS[f["metric"]] for f in ranked if f["metric"] in ACTIONS))
        text = {
            "alert": "Do not rely on these results before you",
            "warning": "Before relying on these results,",
            "notice": "Minor differences were measured; if they matter,",
            "info": "No action needed: no measured difference reached a threshold.",
        }[level]
        if actions:
            text = f"{text} {'; '.join(actions)}."
        recommendation = {
            "level": {"alert": "high", "warning": "medium", "notice": "low", "info": "none"}[level],
            "text": text,
            "based_on": [f["metric"] for f in ranked],
        }
    return summary, recommendation


def build_report(
    job: dict[str, Any],
    records: Sequence[ExecutionRecord],
    analysis: Analysis,
    *,
    runtime_kid: str,
    model_info: dict[str, Any],
    classifier_info: dict[str, Any],
    thresholds: Thresholds,
    generated_at: float,
) -> dict[str, Any]:
    """The unsigned DifferenceReport document."""
    summary, recommendation = summarise(analysis)
    if analysis.integrity["output_hash_mismatches"]:
        status = "rejected"
    elif analysis.metrics["comparable_pairs"] == 0:
        status = "inconclusive"
    else:
        status = "verified"
    spec = job.get("spec") if isinstance(job.get("spec"), dict) else {}
    benchmark = spec.get("benchmark") if isinstance(spec, dict) else None
    return {
        "kind": "beacon.difference-report",
        "version": REPORT_VERSION,
        "id": report_id_for(job["id"]),
        "job_id": job["id"],
        "benchmark": {
            "name": job["benchmark"],
            "id": job["id"],
            "version": benchmark.get("version") if isinstance(benchmark, dict) else None,
        },
        "job_spec_hash": "sha256:" + job["spec_hash"],
        "regions": analysis.regions_completed,
        "receipts": [
            {
                "region": r.region,
                "receipt_ref": r.receipt_id,
                "execution_id": r.id,
                "leaf_index": r.leaf_index,
                "status": r.status,
            }
            for r in sorted(records, key=lambda r: (r.region, r.model, r.question_id, r.variant))
        ],
        "comparisons": analysis.comparisons,
        "items": analysis.items,
        "region_scores": analysis.regions,
        "metrics": analysis.metrics,
        "attribution": analysis.attribution,
        "integrity": analysis.integrity,
        "findings": analysis.findings,
        "summary": summary,
        "recommendation": recommendation,
        "method": {
            "analysis": ANALYSIS_VERSION,
            "embedding_model": model_info,
            "classifier": classifier_info,
            "similarity": "cosine of mean-pooled, L2-normalised embeddings, clipped to [0, 1]",
            "thresholds": thresholds.as_dict(),
            "definitions": "docs/analysis.md",
        },
        "generated_at": iso_time(generated_at),
        "attester": {"org": "beacon", "runner_version": __version__, "pubkey_fingerprint": runtime_kid},
        "status": status,
    }


def _analyse_sync(
    records: Sequence[ExecutionRecord], prompt_context: str, thresholds: Thresholds, spec: Any = None
) -> tuple[Analysis, dict[str, Any], dict[str, Any]]:
    classifier: Classifier = default_classifier()
    analysis = analyse(records, classifier=classifier, prompt_context=prompt_context, thresholds=thresholds)
    scores = score_spec(spec, records, analysis)
    if scores is not None:  # the JobSpec's own scores and thresholds (spec_scores.py)
        analysis.spec_scores = scores
        analysis.findings.extend(threshold_findings(scores))
    return analysis, load_model().describe(), classifier.describe()


# --- the entry point --------------------------------------------------------------------------------


async def create_difference_report(
    runtime: Runtime, job_id: str, *, thresholds: Thresholds = Thresholds()
) -> dict[str, Any] | None:
    """Build, sign, store and log the job's report; return it (the stored one if it exists).

    None when fewer than two regions completed an execution with output, or when the job's
    benchmark's definition says no report compares it (``noop``, which calls no model). Raises LookupError for an unknown job.
    """
    db = runtime.db
    async with db.connect() as conn:  # released before the CPU-heavy part (one SQLite connection)
        existing = await _stored(conn, job_id)
        if existing is not None:
            return dict(existing["report"])
        row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).mappings().first()
        if row is None:
            raise LookupError(f"unknown job {job_id!r}")
        if not definition_for(row["benchmark"]).compared:
            return None
        job = dict(row)
        records = await load_executions(conn, job_id)
    if len(regions_completed(records)) < 2:
        return None

    prompt_context = _prompt_context(job.get("spec"))
    analysis, model_info, classifier_info = await asyncio.to_thread(
        _analyse_sync, records, prompt_context, thresholds, job.get("spec")
    )
    async with db.connect() as conn:
        served = await served_models(conn, job_id)
    document = build_report(
        job,
        records,
        analysis,
        runtime_kid=runtime.runner_key.kid,
        model_info=model_info,
        classifier_info=classifier_info,
        thresholds=thresholds,
        generated_at=now(),
    )
    if analysis.spec_scores is not None:
        document["spec_scores"] = analysis.spec_scores
    if served:
        document["models_served"] = served
    document.update(dialect_summary(job.get("spec")))
    signed = sign_document(document, runtime.runner_key)
    report_id = signed["id"]

    async with db.begin() as conn:
        inserted = (
            await conn.execute(
                db.insert(diff_reports)
                .values(
                    id=report_id,
                    job_id=job_id,
                    status=signed["status"],
                    regions=signed["regions"],
                    analysis_type=ANALYSIS_TYPE,
                    report=signed,
                    created_at=now(),
                )
                .on_conflict_do_nothing(index_elements=["job_id"])
                .returning(diff_reports.c.id)
            )
        ).first()
        if inserted is None:  # another finalizer run got there first: theirs stands
            winner = await _stored(conn, job_id)
            assert winner is not None
            return dict(winner["report"])
        stamp = now()
        await conn.execute(
            executions.update()
            .where(executions.c.id == sa.bindparam("execution_id"))
            .values(classification=sa.bindparam("verdict"), updated_at=stamp),
            [
                {"execution_id": execution_id, "verdict": c.as_dict()}
                for execution_id, c in analysis.classifications.items()
            ],
        )
        leaf_index = await runtime.tlog.append(conn, kind="diff-report", ref=report_id, entry=jcs(signed))
        await conn.execute(
            diff_reports.update().where(diff_reports.c.id == report_id).values(leaf_index=leaf_index)
        )
    log.info(
        "difference report created",
        extra={
            "job_id": job_id,
            "report_id": report_id,
            "status": signed["status"],
            "regions": signed["regions"],
            "recommendation": signed["recommendation"]["level"],
        },
    )
    return signed


async def finalize_difference_report(runtime: Runtime, job_id: str) -> None:
    """Job finalizer: the job's difference report (before the bundle, which references it)."""
    await create_difference_report(runtime, job_id)
