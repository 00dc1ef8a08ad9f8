"""Write a job and its executions straight into the store, as the pipeline would have left them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from beacon.canonical import sha256_hex
from beacon.intake.planner import execution_id
from beacon.store import Database
from beacon.store.tables import executions, jobs

Key = tuple[str, str, str, str]
"""(region, model, question_id, variant)."""


async def insert_job(
    db: Database,
    job_id: str,
    outputs: Mapping[Key, str | None],
    *,
    benchmark: str = "bias-detection",
    prompt_context: str = "neutral",
    failed: Mapping[Key, str] | None = None,
    status: str = "completed",
    created_at: float | None = None,
) -> dict[str, str]:
    """Insert the job row and one execution per key; return key → execution id.

    ``outputs`` maps each key to the model's answer (None: completed without output text);
    ``failed`` maps keys to an error code: those executions failed and have no output.
    """
    at = created_at if created_at is not None else time.time()
    failed = dict(failed or {})
    regions = sorted({key[0] for key in [*outputs, *failed]})
    spec = {
        "id": job_id,
        "version": "1",
        "benchmark": {"name": benchmark, "version": "1"},
        "options": {"prompt_context": prompt_context},
    }
    ids: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for key in [*outputs, *failed]:
        region, model, question_id, variant = key
        ident = execution_id(job_id, region, model, question_id, variant)
        ids["/".join(key)] = ident
        text = outputs.get(key) if key not in failed else None
        rows.append(
            {
                "id": ident,
                "job_id": job_id,
                "region": region,
                "model": model,
                "question_id": question_id,
                "variant": variant,
                "status": "failed" if key in failed else "completed",
                "error_code": failed.get(key),
                "output": text,
                "output_hash": sha256_hex(text.encode()) if text is not None else None,
                "receipt_id": "rc_" + ident[3:],
                "created_at": at,
                "updated_at": at,
            }
        )
    async with db.begin() as conn:
        await conn.execute(
            jobs.insert().values(
                id=job_id,
                status=status,
                benchmark=benchmark,
                spec=spec,
                raw="{}",
                spec_hash=sha256_hex(job_id.encode()),
                signature_scheme="jcs",
                public_key="test",
                regions=regions,
                total_executions=len(rows),
                created_at=at,
                finished_at=at if status in ("completed", "failed", "cancelled", "timed_out") else None,
                updated_at=at,
            )
        )
        if rows:
            await conn.execute(executions.insert(), rows)
    return ids
