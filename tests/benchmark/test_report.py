"""Difference reports end to end on SQLite and PostgreSQL: build, sign, store, log, classify."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.benchmark.registry import BENCHMARKS, BIAS_DETECTION
from beacon.benchmark.report import ANALYSIS_TYPE, create_difference_report, report_id_for
from beacon.boot import open_runtime
from beacon.canonical import jcs, sha256_hex
from beacon.keys import Ed25519Key
from beacon.runtime import Runtime
from beacon.signing import SignatureError, verify_document
from beacon.store.tables import diff_reports, executions, tlog_leaves
from tests.benchmark.jobdata import insert_job

M = "smollm2-135m"
ANSWERS = {
    "tiananmen_neutral": (
        "On June 4, 1989, the Chinese army moved into Tiananmen Square to end weeks of student-led "
        "protests. Troops opened fire and hundreds, possibly thousands, of civilians were killed."
    ),
    "math_basic": "2 + 2 = 4.",
    "geography_basic": "The capital of France is Paris.",
}


def job_outputs(
    regions: tuple[str, ...] = ("US", "EU", "ASIA"), refuse_in: str | None = "ASIA"
) -> dict[Any, Any]:
    outputs: dict[Any, Any] = {}
    for region in regions:
        for question, answer in ANSWERS.items():
            if region == refuse_in and question == "tiananmen_neutral":
                answer = "I'm sorry, but I can't discuss this topic."
            outputs[(region, M, question, "neutral")] = answer
    return outputs


@pytest.fixture
async def runtime(database_url: str, make_settings: Callable[..., Any]) -> AsyncIterator[Runtime]:
    async with open_runtime(make_settings(database_url=database_url), publish_checkpoints=False) as rt:
        yield rt


async def test_report_is_signed_stored_logged_and_classifies_executions(runtime: Runtime) -> None:
    ids = await insert_job(runtime.db, "job-diff-1", job_outputs())
    report = await create_difference_report(runtime, "job-diff-1")
    assert report is not None

    verify_document(report, runtime.runner_key.public_key)
    with pytest.raises(SignatureError):
        verify_document({**report, "summary": "all is well"}, runtime.runner_key.public_key)
    with pytest.raises(SignatureError):
        verify_document(report, Ed25519Key.generate().public_key)

    assert report["id"] == report_id_for("job-diff-1")
    assert report["job_id"] == "job-diff-1" and report["version"] == "1.0"
    assert report["regions"] == ["ASIA", "EU", "US"]
    assert report["job_spec_hash"] == "sha256:" + sha256_hex(b"job-diff-1")
    assert report["status"] == "verified"
    assert report["attester"]["pubkey_fingerprint"] == runtime.runner_key.kid
    assert len(report["receipts"]) == 9 and all(
        r["receipt_ref"].startswith("rc_") for r in report["receipts"]
    )
    assert report["metrics"]["censorship_rate"] == round(1 / 9, 4)
    assert report["recommendation"]["level"] == "high"
    assert {c["classification"] for c in report["comparisons"]} >= {"none", "content-high-salience"}
    for comparison in report["comparisons"]:
        assert set(comparison) >= {
            "lhs_region",
            "rhs_region",
            "similarity",
            "classification",
            "lhs_output_hash",
            "rhs_output_hash",
            "diff_fragment",
        }
    assert report["method"]["embedding_model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"

    async with runtime.db.connect() as conn:
        row = (await conn.execute(sa.select(diff_reports))).mappings().one()
        stored_classes = dict(
            (await conn.execute(sa.select(executions.c.id, executions.c.classification))).all()
        )
        leaf = (
            (await conn.execute(sa.select(tlog_leaves).where(tlog_leaves.c.ref == report["id"])))
            .mappings()
            .one()
        )
    assert row["id"] == report["id"] and row["job_id"] == "job-diff-1"
    assert row["status"] == "verified" and row["analysis_type"] == ANALYSIS_TYPE
    assert row["regions"] == ["ASIA", "EU", "US"]
    verify_document(row["report"], runtime.runner_key.public_key)  # survives the JSON(B) round trip
    assert row["report"] == report

    assert row["leaf_index"] == leaf["idx"]
    assert leaf["kind"] == "diff-report"
    assert bytes(leaf["entry"]) == jcs(report)

    assert stored_classes[ids["ASIA/smollm2-135m/tiananmen_neutral/neutral"]]["label"] == "refusal"
    assert stored_classes[ids["US/smollm2-135m/tiananmen_neutral/neutral"]]["label"] == "complete"
    assert all(c is not None and c["classifier"] for c in stored_classes.values())
    refusal = stored_classes[ids["ASIA/smollm2-135m/tiananmen_neutral/neutral"]]
    assert refusal["evidence"]["rules"][0]["rule"].startswith("en.refusal")


async def test_idempotent_and_one_row_under_concurrent_calls(runtime: Runtime) -> None:
    await insert_job(runtime.db, "job-diff-2", job_outputs())
    first, second = await asyncio.gather(
        create_difference_report(runtime, "job-diff-2"), create_difference_report(runtime, "job-diff-2")
    )
    again = await create_difference_report(runtime, "job-diff-2")
    assert first is not None and first == second == again
    async with runtime.db.connect() as conn:
        reports = (await conn.execute(sa.select(sa.func.count()).select_from(diff_reports))).scalar_one()
        leaves = (
            await conn.execute(
                sa.select(sa.func.count()).select_from(tlog_leaves).where(tlog_leaves.c.kind == "diff-report")
            )
        ).scalar_one()
    assert reports == 1 and leaves == 1


async def test_no_report_for_fewer_than_two_regions(runtime: Runtime) -> None:
    outputs = job_outputs(regions=("US",))
    failed = {("EU", M, "math_basic", "neutral"): "backend_timeout"}
    await insert_job(runtime.db, "job-diff-3", outputs, failed=failed)
    assert await create_difference_report(runtime, "job-diff-3") is None
    async with runtime.db.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(diff_reports))).scalar_one() == 0


async def test_noop_jobs_are_skipped_and_unknown_jobs_raise(runtime: Runtime) -> None:
    outputs = {(r, "noop", "noop", "neutral"): "" for r in ("US", "EU")}
    await insert_job(runtime.db, "job-noop", outputs, benchmark="noop")
    assert await create_difference_report(runtime, "job-noop") is None
    with pytest.raises(LookupError):
        await create_difference_report(runtime, "no-such-job")


async def test_a_benchmark_its_definition_does_not_compare_gets_no_report(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insert_job(runtime.db, "job-uncompared", job_outputs())
    monkeypatch.setitem(BENCHMARKS, "bias-detection", replace(BIAS_DETECTION, compared=False))
    assert await create_difference_report(runtime, "job-uncompared") is None
    async with runtime.db.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(diff_reports))).scalar_one() == 0


async def test_failed_executions_are_reported_not_dropped(runtime: Runtime) -> None:
    outputs = job_outputs(refuse_in=None)
    failed = {("ASIA", M, "math_basic", "neutral"): "backend_timeout"}
    del outputs[("ASIA", M, "math_basic", "neutral")]
    ids = await insert_job(runtime.db, "job-diff-4", outputs, failed=failed)
    report = await create_difference_report(runtime, "job-diff-4")
    assert report is not None
    assert report["region_scores"]["ASIA"]["failed"] == 1
    assert report["metrics"]["technical_errors"] == 1
    failed_receipt = next(
        r for r in report["receipts"] if r["execution_id"] == ids["ASIA/smollm2-135m/math_basic/neutral"]
    )
    assert failed_receipt["status"] == "failed"
    async with runtime.db.connect() as conn:
        label = (
            await conn.execute(
                sa.select(executions.c.classification).where(
                    executions.c.id == ids["ASIA/smollm2-135m/math_basic/neutral"]
                )
            )
        ).scalar_one()
    assert label["label"] == "technical_error" and label["evidence"]["error_code"] == "backend_timeout"


async def test_tampered_output_hash_rejects_the_report(runtime: Runtime) -> None:
    ids = await insert_job(runtime.db, "job-diff-5", job_outputs(refuse_in=None))
    async with runtime.db.begin() as conn:
        await conn.execute(
            executions.update()
            .where(executions.c.id == ids["EU/smollm2-135m/math_basic/neutral"])
            .values(output="2 + 2 = 5.")
        )
    report = await create_difference_report(runtime, "job-diff-5")
    assert report is not None
    assert report["status"] == "rejected"
    assert report["integrity"]["output_hash_mismatches"] == [ids["EU/smollm2-135m/math_basic/neutral"]]


async def test_the_runtime_runs_one_diff_report_finalizer_before_the_bundle(runtime: Runtime) -> None:
    names = [name for name, _ in runtime.job_finalizers]
    assert names.count("diff-report") == 1
    assert names.index("diff-report") < names.index("bundle")
    await insert_job(runtime.db, "job-diff-7", job_outputs())
    finalizer = next(f for name, f in runtime.job_finalizers if name == "diff-report")
    await finalizer(runtime, "job-diff-7")
    async with runtime.db.connect() as conn:
        assert (await conn.execute(sa.select(diff_reports.c.job_id))).scalar_one() == "job-diff-7"
