"""GET /metrics: Prometheus text with the HTTP edge and intake series, labelled by route template."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.api.conftest import MINIMAL


async def test_metrics_count_requests_by_route_and_jobs_by_scheme(
    client: httpx.AsyncClient, sign: Callable[[dict[str, Any]], bytes]
) -> None:
    await client.get("/api/v1/jobs/some-unknown-id")
    await client.post("/api/v1/jobs", content=sign(MINIMAL), headers={"Content-Type": "application/json"})
    await client.post("/api/v1/jobs", content=b'{"id": "x"}', headers={"Content-Type": "application/json"})
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'beacon_http_requests_total{method="GET",route="/api/v1/jobs/{job_id}",status="404"}' in text
    assert (
        'beacon_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/jobs"}' in text
    )
    assert 'beacon_jobs_accepted_total{scheme="jcs"}' in text
    assert 'beacon_jobs_rejected_total{code="signature_missing"}' in text
    assert "some-unknown-id" not in text  # templates, not raw paths: bounded label sets
