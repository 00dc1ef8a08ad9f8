"""A region worker on the Golem devnet: the execution's receipt carries the market's evidence, and a
provider that fails is retried per the job's budget, ending in a failed receipt that names its agreements."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.executors.golem import GolemExecutor
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID
from beacon.runtime import Runtime
from beacon.store.tables import executions
from beacon.verify import verify_receipt
from tests.pipeline_support import Submitter, wait_for_jobs
from tests.worker.conftest import make_worker, running


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url  # the devnet is the slow part; one store is enough here


@pytest.fixture
def worker_settings() -> dict[str, Any]:
    return {
        "heartbeat_interval_s": 0.5,
        "worker_lease_s": 30.0,
        "retry_base_s": 0.1,
        "retry_max_s": 0.2,
        "max_attempts": 2,
        "cancel_wait_s": 5.0,
    }


@pytest.fixture
def eu(golem_devnet: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[GolemExecutor]:
    monkeypatch.setenv("PATH", f"{golem_devnet.gftp_dir}{os.pathsep}{os.environ['PATH']}")
    golem_devnet.set_fault("EU", None)
    yield GolemExecutor(
        region="EU",
        allowed_providers=golem_devnet.region_providers()["EU"],
        images=golem_devnet.images([SMOLLM2_MODEL_ID]),
        yagna_url=golem_devnet.requestor.api_url,
        app_key=golem_devnet.requestor.app_key,
        payment_network="hoodi",
    )
    golem_devnet.set_fault("EU", None)


async def execution_rows(runtime: Runtime, job_id: str) -> list[sa.Row]:
    async with runtime.db.connect() as conn:
        query = sa.select(executions).where(executions.c.job_id == job_id)
        return list((await conn.execute(query)).all())


async def test_a_failing_provider_is_retried_per_budget_then_fails_with_its_receipt(
    runtime: Runtime, submitter: Submitter, golem_devnet: Any, eu: GolemExecutor, tmp_path: Path
) -> None:
    golem_devnet.set_fault("EU", "fail")
    try:
        async with running(runtime, make_worker(runtime, "EU", eu)):
            await submitter.submit(
                runtime,
                "golem-fail",
                benchmark="who-are-you",
                regions=["EU"],
                models=[SMOLLM2_MODEL_ID],
                constraints={"min_success_rate": 1.0},
            )
            assert await wait_for_jobs(runtime.db, ["golem-fail"], timeout_s=120) == {"golem-fail": "failed"}
    finally:
        await eu.aclose()
    (row,) = await execution_rows(runtime, "golem-fail")
    assert (row.status, row.attempt, row.error_code) == ("failed", 2, "golem_task_failed")
    assert "retry budget exhausted" in row.error_detail
    verify_receipt(row.receipt, runtime.runner_key.public_key_b64)
    info = row.receipt["provider"]["info"]
    assert info["provider_id"] == golem_devnet.providers["EU"].node_id
    assert info["agreement_id"] and info["activity_id"]
    assert "AgreementConfirmed" in [e["event"] for e in info["negotiation"]]


async def test_a_completed_golem_execution_has_the_agreement_and_invoice_in_its_receipt(
    runtime: Runtime, submitter: Submitter, golem_devnet: Any, eu: GolemExecutor
) -> None:
    try:
        async with running(runtime, make_worker(runtime, "EU", eu)):
            await submitter.submit(
                runtime, "golem-ok", benchmark="who-are-you", regions=["EU"], models=[SMOLLM2_MODEL_ID]
            )
            assert await wait_for_jobs(runtime.db, ["golem-ok"], timeout_s=120) == {"golem-ok": "completed"}
    finally:
        await eu.aclose()
    (row,) = await execution_rows(runtime, "golem-ok")
    verify_receipt(row.receipt, runtime.runner_key.public_key_b64)
    assert row.receipt["provider"]["id"] == f"golem:{golem_devnet.providers['EU'].node_id}"
    info = row.receipt["provider"]["info"]
    assert info["offer_region"] == "EU" and info["price"]["coeffs"]
    assert len(info["agreement_id"]) == 64 and info["invoice"]["status"] == "ACCEPTED"
