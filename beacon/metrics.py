"""Prometheus metrics: the HTTP edge and intake; other subsystems add theirs to the same registry.

Served at ``GET /metrics``. With several server processes (``--workers N``) set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before start so that every process's samples are
aggregated (prometheus_client's multiprocess mode); otherwise each scrape sees one process.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

HTTP_REQUESTS = Counter(
    "beacon_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "beacon_http_request_duration_seconds",
    "Time from request start to the end of the response, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
JOBS_ACCEPTED = Counter(
    "beacon_jobs_accepted_total", "Signed JobSpecs accepted, by signature scheme.", ["scheme"]
)
JOBS_REJECTED = Counter(
    "beacon_jobs_rejected_total", "JobSpec submissions refused, by problem code.", ["code"]
)
INTAKE_BATCH_JOBS = Histogram(
    "beacon_intake_batch_jobs",
    "Submissions written per intake transaction (group commit).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
INTAKE_COMMIT_SECONDS = Histogram(
    "beacon_intake_commit_seconds",
    "Time to write and commit one intake transaction.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RATE_LIMITED = Counter(
    "beacon_rate_limited_total", "Requests refused by the rate limiter, by policy.", ["policy"]
)
RATE_LIMITER_ERRORS = Counter(
    "beacon_rate_limiter_errors_total", "Rate-limiter store errors (the in-process limiter took over)."
)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric of this process (or of all processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
