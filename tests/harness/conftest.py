"""A real runner API on a loopback port holding one bias-detection job whose difference report is
real (analysed, signed, logged) but whose receipts and bundle were never issued — so the T+45
checks that need them fail, and the findings have a real report to read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from beacon.benchmark.report import create_difference_report
from beacon.boot import open_runtime
from beacon.config import Settings
from beacon.keys import Ed25519Key, write_key_file
from tests.benchmark.jobdata import insert_job
from tests.benchmark.test_report import job_outputs
from tests.cli.test_tlog import Runner

TOKENS = {"admin": "adm-findings-token", "operator": "op-findings-token", "viewer": "view-findings-token"}
JOB = "job-findings-1"
JOB_ANSWERED = "job-findings-2"
"""The same questions, where ASIA answers instead of refusing (a later run whose answer changed)."""


@dataclass
class SeededRunner:
    url: str
    job_id: str
    report: dict[str, Any]
    execution_ids: dict[str, str]
    answered_job_id: str = JOB_ANSWERED


async def _seed(settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    async with open_runtime(settings) as runtime:
        ids = await insert_job(runtime.db, JOB, job_outputs())  # ASIA refuses the tiananmen question
        report = await create_difference_report(runtime, JOB)
        assert report is not None
        await insert_job(runtime.db, JOB_ANSWERED, job_outputs(refuse_in=None))
        assert await create_difference_report(runtime, JOB_ANSWERED) is not None
        return report, ids


@pytest.fixture
def seeded_runner(make_settings: Callable[..., Any], tmp_path: Path) -> Iterator[SeededRunner]:
    key_file = tmp_path / "runner-key.json"
    write_key_file(Ed25519Key.generate(), key_file)
    settings = make_settings(
        data_dir=tmp_path / "runner",
        runner_key_file=key_file,
        admin_tokens=[TOKENS["admin"]],
        operator_tokens=[TOKENS["operator"]],
        viewer_tokens=[TOKENS["viewer"]],
    )
    report, ids = asyncio.run(_seed(settings))
    with Runner(settings) as running:
        yield SeededRunner(running.url, JOB, report, ids)
