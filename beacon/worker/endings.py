"""Ending executions: the terminal write, its signed receipt and its log leaf, in one transaction.

Whoever ends an execution — the worker that ran it, the worker that found its job cancelled or out
of time, the cancel endpoint, the sweeper — goes through :func:`write_endings`, so every terminal
execution has exactly one receipt and (when the transparency log is on) one leaf, written in the
same transaction as the status. The caller must hold the execution rows' locks and have checked
that each row is still in the state it expects (the fencing check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.benchmark.questions import question_set_version
from beacon.benchmark.registry import definition_for
from beacon.executors.base import ExecutionRequest, ExecutionResult
from beacon.receipts import ReceiptFacts, issue_receipt_with_leaf
from beacon.runtime import Runtime
from beacon.store.tables import executions
from beacon.transparency.log import LeafInput
from beacon.worker.lifecycle import EXECUTION_TERMINAL, ExecutionStatus
from beacon.worker.terms import JobTerms

EXECUTION_COLUMNS = (
    executions.c.id,
    executions.c.job_id,
    executions.c.region,
    executions.c.model,
    executions.c.question_id,
    executions.c.variant,
    executions.c.status,
    executions.c.attempt,
    executions.c.worker_id,
    executions.c.receipt_id,
    executions.c.error_code,
    executions.c.error_detail,
    executions.c.queued_at,
    executions.c.started_at,
)


@dataclass(frozen=True)
class Ending:
    """How one attempt ended. ``status`` QUEUED means "retry after ``retry_in`` seconds"."""

    status: ExecutionStatus
    ended_at: float
    result: ExecutionResult | None = None
    request: ExecutionRequest | None = None
    """What this attempt sent to the backend, as built (None when it sent nothing): the receipt states
    its prompts and options, so it attests what the model received, not a rebuild of it."""
    error_code: str | None = None
    error_message: str | None = None
    retry_in: float | None = None
    dead_letter: bool = False
    """The retry budget ran out: the message also goes to the dead-letter store."""
    provider_info: dict[str, Any] = field(default_factory=dict)
    """The backend's evidence of a failed attempt (an executor error's ``details["provider_info"]``)."""

    @property
    def terminal(self) -> bool:
        return self.status in EXECUTION_TERMINAL


@dataclass(frozen=True)
class EndingItem:
    row: Any
    """The locked execution row (:data:`EXECUTION_COLUMNS`)."""
    terms: JobTerms
    ending: Ending
    attempt: int
    started_at: float | None
    worker_id: str | None
    provider_info: dict[str, Any] = field(default_factory=dict)


def receipt_facts(item: EndingItem) -> ReceiptFacts:
    """What the receipt of ``item`` states; its prompts are those of the request the attempt sent."""
    row, terms, ending, result = item.row, item.terms, item.ending, item.ending.result
    request = ending.request
    return ReceiptFacts(
        execution_id=row.id,
        job_id=row.job_id,
        jobspec_hash=terms.spec_hash,
        benchmark=terms.benchmark,
        benchmark_version=terms.benchmark_version,
        question_id=row.question_id,
        question_set_version=question_set_version(row.question_id)
        if definition_for(terms.benchmark).calls_model
        else None,
        requested_region=row.region,
        served_region=result.served_region if result else None,
        model=row.model,
        model_digest=(result.model_digest or None) if result else None,
        backend=result.backend if result else None,
        backend_version=result.backend_version if result else None,
        provider_id=result.provider_id if result else None,
        provider_info={
            **(result.provider_info if result else {}),
            **ending.provider_info,
            **item.provider_info,
        }
        or None,
        variant=row.variant,
        system_prompt=request.system_prompt if request else None,
        prompt=request.prompt if request else None,
        options=(request.options if request else terms.options).as_dict(),
        attempt=item.attempt,
        queued_at=row.queued_at,
        started_at=item.started_at,
        ended_at=ending.ended_at,
        tokens_in=result.tokens_in if result else None,
        tokens_out=result.tokens_out if result else None,
        backend_timings=dict(result.timings) if result else None,
        output=result.text if result else None,
        status=str(ending.status),
        error_code=ending.error_code,
        error_message=ending.error_message,
        worker_id=item.worker_id,
    )


def sign_ending(runtime: Runtime, item: EndingItem) -> tuple[dict[str, Any], bytes]:
    """The signed receipt of an ending and its log leaf (CPU work: do it outside transactions)."""
    return issue_receipt_with_leaf(receipt_facts(item), runtime.runner_key)


async def write_endings(
    conn: AsyncConnection,
    runtime: Runtime,
    items: Sequence[EndingItem],
    prepared: dict[str, tuple[dict[str, Any], bytes]] | None = None,
) -> list[dict[str, Any]]:
    """Write terminal endings with their signed receipts (and log leaves); return the receipts.

    ``prepared`` holds receipts signed beforehand (by execution id), so that the transaction, which
    holds row locks and the log's sequencer, does no signing.
    """
    if not items:
        return []
    issued = [
        prepared[item.row.id] if prepared and item.row.id in prepared else sign_ending(runtime, item)
        for item in items
    ]
    receipts = [receipt for receipt, _ in issued]
    leaves = await runtime.tlog.append_many(
        conn, [LeafInput("receipt", r["receipt_id"], entry) for r, entry in issued]
    )
    params = []
    for item, receipt, leaf in zip(items, receipts, leaves, strict=True):
        ending, result = item.ending, item.ending.result
        timings = receipt["timings"]
        params.append(
            {
                "_id": item.row.id,
                "status": str(ending.status),
                "attempt": item.attempt,
                "backend": result.backend if result else None,
                "backend_version": result.backend_version if result else None,
                "provider_id": result.provider_id if result else None,
                "served_region": result.served_region if result else None,
                "model_digest": (result.model_digest or None) if result else None,
                "output": result.text if result else None,
                "output_hash": receipt["output"]["sha256"],
                "tokens_in": result.tokens_in if result else None,
                "tokens_out": result.tokens_out if result else None,
                "timings": {
                    "queue_wait_s": timings["queue_wait_s"],
                    "duration_s": timings["duration_s"],
                    "tokens_per_s": timings["tokens_per_s"],
                    **timings["backend"],
                },
                "error_code": ending.error_code,
                "error_detail": ending.error_message,
                "receipt_id": receipt["receipt_id"],
                "receipt": receipt,
                "leaf_index": leaf,
                "worker_id": item.worker_id,
                "started_at": item.started_at,
                "finished_at": ending.ended_at,
                "updated_at": ending.ended_at,
            }
        )
    await update_rows(conn, params)
    return receipts


async def update_rows(conn: AsyncConnection, params: Sequence[dict[str, Any]]) -> None:
    """``UPDATE executions`` for many rows at once; each dict has ``_id`` and the same column names."""
    if not params:
        return
    columns = [name for name in params[0] if name != "_id"]
    # executemany: bind names must differ from the column names SQLAlchemy reserves for SET.
    await conn.execute(
        executions.update()
        .where(executions.c.id == sa.bindparam("b__id"))
        .values({name: sa.bindparam(f"b_{name}") for name in columns}),
        [{f"b_{key}": value for key, value in row.items()} for row in params],
    )
