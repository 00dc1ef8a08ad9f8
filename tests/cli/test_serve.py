"""``beacon serve`` as a real process: what uvicorn is allowed to believe, and how start-up fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Served, start_server, stop_server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_server(tmp_path / "serve", {"SUBMIT_RATE_LIMIT_PER_MINUTE": "2"}, trusted=[])
    yield server
    stop_server(server)


def test_uvicorn_does_not_trust_x_forwarded_for_from_loopback(served: Served) -> None:
    # Issue 16, item 2: uvicorn's default proxy_headers took the client from X-Forwarded-For for
    # loopback peers, so each forged address got a fresh submit quota and a forged access-log line.
    statuses = [
        httpx.post(
            f"{served.url}/api/v1/jobs",
            content=b"{}",
            headers={"Content-Type": "application/json", "X-Forwarded-For": f"198.51.100.{i}"},
            timeout=10,
        ).status_code
        for i in range(4)
    ]
    assert statuses == [400, 400, 429, 429]
    stop_server(served)
    access = [
        json.loads(line)
        for line in served.log.read_text().splitlines()
        if line.startswith("{") and '"beacon.access"' in line
    ]
    submissions = [entry for entry in access if entry.get("path") == "/api/v1/jobs"]
    assert len(submissions) == 4
    assert {entry["client"] for entry in submissions} == {"127.0.0.1"}
