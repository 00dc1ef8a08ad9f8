"""The common tables as pandas DataFrames: jobs, executions (latency, region), receipts, diffs.

Built from the API's documents, so :class:`beacon.client.BeaconClient` (``client.jobs_frame()`` …),
the notebooks and the report read the same columns. The row builders are plain functions (lists of
dicts); the ``*_frame`` functions wrap them in DataFrames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

JOB_COLUMNS = [
    "id",
    "status",
    "benchmark",
    "regions",
    "total_executions",
    "bundle_cid",
    "created_at",
    "updated_at",
]
RECEIPT_COLUMNS = [
    "receipt_id",
    "execution_id",
    "job_id",
    "region",
    "served_region",
    "model",
    "backend",
    "status",
    "duration_s",
    "tokens_out",
    "output_sha256",
    "kid",
    "issued_at",
]
DIFF_COLUMNS = ["job_id", "id", "regions", "status", "job_status", "created_at", "leaf_index"]


def inference_seconds(timings: dict[str, Any] | None) -> float | None:
    """Time the backend spent answering, without loading the model or waiting for it."""
    if not timings:
        return None
    total = timings.get("total")
    if not isinstance(total, int | float):
        duration = timings.get("duration_s")
        return float(duration) if isinstance(duration, int | float) else None
    overhead = sum(v for k in ("load", "wait") if isinstance(v := timings.get(k), int | float))
    return max(0.0, float(total) - overhead)


def execution_rows(job: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per execution of a job fetched with ``include=executions`` (table ``executions``)."""
    rows = []
    for execution in job.get("executions") or []:
        timings = execution.get("timings") or {}
        rows.append(
            {
                "job_id": job["id"],
                "execution_id": execution["id"],
                "region": execution["region"],
                "served_region": execution.get("served_region"),
                "model": execution["model"],
                "question_id": execution["question_id"],
                "variant": execution.get("variant"),
                "status": execution["status"],
                "backend": execution.get("backend"),
                "provider_id": execution.get("provider_id"),
                "latency_s": inference_seconds(timings),
                "duration_s": timings.get("duration_s"),
                "queue_s": timings.get("queue_wait_s"),
                "tokens_out": execution.get("tokens_out"),
                "tokens_per_s": timings.get("tokens_per_s"),
                "receipt_id": execution.get("receipt_id"),
                "leaf_index": execution.get("leaf_index"),
                "error_code": execution.get("error_code"),
            }
        )
    return rows


def jobs_frame(jobs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per job (``GET /api/v1/jobs`` entries or job documents)."""
    rows = [
        {key: job.get(key) for key in JOB_COLUMNS} | {"regions": ", ".join(job.get("regions") or [])}
        for job in jobs
    ]
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def executions_frame(jobs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per execution of jobs fetched with their executions: region, model, latency, queue wait …"""
    rows = [row for job in jobs for row in execution_rows(dict(job))]
    return pd.DataFrame(rows)


def receipt_row(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of one signed receipt that a table shows."""
    timings = receipt.get("timings") or {}
    region = receipt.get("region") or {}
    model = receipt.get("model") or {}
    return {
        "receipt_id": receipt.get("receipt_id"),
        "execution_id": receipt.get("execution_id"),
        "job_id": receipt.get("job_id"),
        "region": region.get("requested") if isinstance(region, Mapping) else region,
        "served_region": region.get("served") if isinstance(region, Mapping) else None,
        "model": model.get("id") if isinstance(model, Mapping) else model,
        "backend": (receipt.get("backend") or {}).get("name"),
        "status": receipt.get("status"),
        "duration_s": timings.get("duration_s"),
        "tokens_out": (receipt.get("tokens") or {}).get("out"),
        "output_sha256": (receipt.get("output") or {}).get("sha256"),
        "kid": receipt.get("kid"),
        "issued_at": receipt.get("issued_at"),
    }


def receipts_frame(receipts: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per receipt (``GET /api/v1/executions/{id}/receipt`` documents)."""
    return pd.DataFrame([receipt_row(r) for r in receipts], columns=RECEIPT_COLUMNS)


def diffs_frame(diffs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per difference report listed by ``GET /api/v1/diffs``."""
    rows = [
        {key: d.get(key) for key in DIFF_COLUMNS} | {"regions": ", ".join(d.get("regions") or [])}
        for d in diffs
    ]
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)
