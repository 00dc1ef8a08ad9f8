"""JobSpecs for the phases (built, stamped, signed) and the rows the report reads from a job.

Signing goes through intake's own :func:`beacon.intake.sign_jobspec` (Beacon's scheme: the
``beacon-jobspec/v1`` context line, then RFC 8785), after
:func:`beacon.intake.stamp` adds the ``metadata.timestamp`` and ``metadata.nonce`` the runner's replay
protection requires — the same thing ``beacon sign`` does for a file.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from beacon.frames import execution_rows, inference_seconds
from beacon.intake import sign_jobspec, stamp
from beacon.keys import Ed25519Key
from beacon.queue.relay import PUBLISHED_EVENT
from beacon.worker.lifecycle import JobStatus

__all__ = ["execution_rows", "inference_seconds"]  # the rows live in beacon.frames (the client uses them)

JOB_STATES = tuple(JobStatus)
"""Every job state, in the order a job passes through them (the terminal ones last)."""


def new_job_id(prefix: str) -> str:
    """A job id unique across runs against the same runner (``t0-175830-a1b2c3``)."""
    return f"{prefix}-{time.strftime('%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def sign(document: dict[str, Any], key: Ed25519Key) -> dict[str, Any]:
    """Stamp and sign ``document`` with ``key`` (Beacon's own, domain-separated scheme)."""
    return sign_jobspec(stamp(document), key)


def minimal_jobspec(job_id: str) -> dict[str, Any]:
    """The written plan's minimal job: ``{"id", "version", "benchmark": "noop", "container": {"image": "noop"}}``."""
    return {"id": job_id, "version": "1", "benchmark": "noop", "container": {"image": "noop"}}


def jobspec(
    job_id: str,
    *,
    benchmark: str = "who-are-you",
    regions: list[str] | None = None,
    models: list[str] | None = None,
    questions: list[str] | None = None,
    max_tokens: int | None = None,
    timeout: str | None = None,
    provider_timeout: str | None = None,
) -> dict[str, Any]:
    """A full-shape JobSpec (unsigned)."""
    document: dict[str, Any] = {
        "id": job_id,
        "version": "1",
        "benchmark": {"name": benchmark, "container": {"image": f"beacon/{benchmark}"}},
    }
    constraints: dict[str, Any] = {}
    if regions:
        constraints["regions"] = list(regions)
        constraints["min_regions"] = len(regions)
    if timeout:
        constraints["timeout"] = timeout
    if provider_timeout:
        constraints["provider_timeout"] = provider_timeout
    if constraints:
        document["constraints"] = constraints
    if models:
        document["models"] = list(models)
    if questions:
        document["questions"] = list(questions)
    if max_tokens is not None:
        document["options"] = {"max_tokens": max_tokens, "temperature": 0.0, "seed": 42}
    return document


def epoch(value: Any) -> float | None:
    """An RFC 3339 time (as the API writes them) or epoch seconds, as epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def timeline_rows(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's state transitions with server timestamps (table ``job_timeline``)."""
    rows = [
        {"job_id": job["id"], "state": event["status"], "at": epoch(event.get("at"))}
        for event in job.get("timeline") or []
        if event.get("at")
    ]
    if not rows:  # a runner without a timeline: fall back to the job's own timestamps
        for state, column in (
            ("created", "created_at"),
            ("enqueued", "enqueued_at"),
            ("executing", "started_at"),
            (job.get("status", "completed"), "finished_at"),
        ):
            if job.get(column):
                rows.append({"job_id": job["id"], "state": state, "at": epoch(job[column])})
    return sorted(
        rows, key=lambda r: (r["at"], JOB_STATES.index(r["state"]) if r["state"] in JOB_STATES else 99)
    )


def states_in_order(rows: list[dict[str, Any]]) -> list[str]:
    """The distinct job states of a timeline, in order of first appearance (relay events left out)."""
    return list(dict.fromkeys(row["state"] for row in rows if row["state"] in JOB_STATES))


def enqueue_observed(job: dict[str, Any]) -> dict[str, Any]:
    """T-0's "Observe enqueue process": the relay's own ``published`` events show that every
    execution's message went from the outbox to its region's queue, after intake enqueued the job.

    Returns the keyword arguments of ``PhaseResults.check`` (expected, actual, passed, evidence).
    Intake writes ``created`` and ``enqueued`` in one transaction, so they alone say nothing about
    the relay; only ``published`` events (written by the relay when the queue took the messages) do.
    """
    timeline = job.get("timeline") or []
    enqueued_at = next((epoch(e.get("at")) for e in timeline if e.get("status") == "enqueued"), None)
    published = [e for e in timeline if e.get("status") == PUBLISHED_EVENT]
    first: dict[str, dict[str, Any]] = {}
    messages = 0
    for event in published:
        detail = event.get("detail") or {}
        region = str(detail.get("region"))
        if detail.get("reason") is None:  # intake's messages (not retries or requeues)
            messages += int(detail.get("messages") or 0)
        first.setdefault(region, {"region": region, "at": epoch(event.get("at")), "messages": 0})
        first[region]["messages"] += int(detail.get("messages") or 0)
    regions = [str(r) for r in job.get("regions") or []]
    expected_messages = int(job.get("total_executions") or 0)
    late = [r["region"] for r in first.values() if enqueued_at is None or (r["at"] or 0) < enqueued_at]
    missing = [r for r in regions if r not in first]
    actual = {
        "enqueued_at": enqueued_at,
        "published": list(first.values()),
        "messages_published": messages,
        "executions": expected_messages,
        "regions_without_publish": missing,
    }
    passed = (
        enqueued_at is not None
        and bool(regions)
        and not missing
        and not late
        and expected_messages > 0
        and messages >= expected_messages
    )
    return {
        "expected": "the relay published every execution's message to its region's queue after intake",
        "actual": actual,
        "passed": passed,
        "evidence": {
            "published_events": published,
            "published_before_enqueued": late,
            "relay_delay_s": {
                r["region"]: None if enqueued_at is None or r["at"] is None else r["at"] - enqueued_at
                for r in first.values()
            },
        },
    }


def peak_concurrent_regions(jobs: list[dict[str, Any]]) -> int:
    """The most regions that had an execution running at the same moment, over ``jobs`` (with executions)."""
    events: list[tuple[float, int, str]] = []
    for job in jobs:
        for execution in job.get("executions") or []:
            started, finished = epoch(execution.get("started_at")), epoch(execution.get("finished_at"))
            if started is not None and finished is not None:
                events += [(started, 1, execution["region"]), (finished, -1, execution["region"])]
    running: dict[str, int] = {}
    peak = 0
    for _, delta, region in sorted(
        events, key=lambda e: (e[0], e[1])
    ):  # an end before a start at the same instant
        running[region] = running.get(region, 0) + delta
        peak = max(peak, sum(1 for count in running.values() if count > 0))
    return peak
