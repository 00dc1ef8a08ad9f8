"""``beacon serve`` as a real process: what uvicorn is allowed to believe, and how start-up fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from beacon.config import without_settings
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


def test_an_unreachable_database_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    # Issue 16, item 8: this was a 528-line traceback.
    env = without_settings(os.environ)
    env.update(
        {
            "DATABASE_URL": "postgresql://beacon:hunter2@127.0.0.1:1/beacon",
            "BEACON_DATA_DIR": str(tmp_path),
            "BEACON_ENV_FILE": str(tmp_path / "no.env"),
            "BEACON_START_WAIT_SECONDS": "0",
        }
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "beacon"), "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2
    assert len(lines) == 1, result.stderr[-3000:]
    assert "DATABASE_URL" in lines[0] and "127.0.0.1:1" in lines[0] and "Connect" in lines[0]
    assert "hunter2" not in result.stderr
