"""API test fixtures: a real runtime (SQLite by default; modules override ``store_url`` to add
PostgreSQL), the app built by ``create_app``, and an httpx client speaking ASGI to it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from beacon.api import create_app
from beacon.boot import open_runtime
from beacon.config import without_settings
from beacon.intake import sign_jobspec, stamp
from beacon.keys import Ed25519Key
from beacon.runtime import Runtime

TOKENS = {
    "admin": "admin-secret-token-1",
    "operator": "operator-secret-token-2",
    "viewer": "viewer-secret-token-3",
}
MINIMAL = {"id": "day1-minimal", "version": "1", "benchmark": "noop", "container": {"image": "noop"}}


def auth(role: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}


@pytest.fixture
def store_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
def signing_key() -> Ed25519Key:
    return Ed25519Key.generate()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Extra settings for this module's runtime (override the fixture to change them)."""
    return {}


@pytest.fixture
async def runtime(
    store_url: str,
    make_settings: Callable[..., Any],
    signing_key: Ed25519Key,
    settings_overrides: dict[str, Any],
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        database_url=store_url,
        admin_tokens=[TOKENS["admin"]],
        operator_tokens=[TOKENS["operator"]],
        viewer_tokens=[TOKENS["viewer"]],
        trusted_keys=json.dumps([{"kid": "dev", "public_key": signing_key.public_key_b64}]),
        **settings_overrides,
    )
    async with open_runtime(settings) as rt:
        yield rt


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[FastAPI]:
    app = create_app(runtime.settings, runtime)
    yield app
    await app.state.intake.aclose()  # what the lifespan does (in-process clients do not run it)
    await app.state.rate_limiter.aclose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def sign(signing_key: Ed25519Key) -> Callable[[dict[str, Any]], bytes]:
    """Stamp (timestamp, nonce) and sign a JobSpec; return the body bytes."""

    def build(document: dict[str, Any]) -> bytes:
        return json.dumps(sign_jobspec(stamp(document), signing_key)).encode()

    return build


# --- a real `beacon serve` process -------------------------------------------------------------------


@dataclass
class Served:
    """A `beacon serve` subprocess and what a client needs to use it."""

    url: str
    workdir: Path
    env: dict[str, str]
    """The environment the plan's shell commands run with (tokens, PATH with the console scripts)."""
    process: subprocess.Popen[str]
    log: Path


def start_server(
    workdir: Path, extra_env: dict[str, str] | None = None, *, trusted: list[dict[str, str]]
) -> Served:
    """Start `beacon serve --port 0` with the plan's environment; wait until it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    env = without_settings(os.environ)
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "BEACON_ENV_FILE": str(workdir / "no.env"),
            "BEACON_DATA_DIR": str(workdir / "data"),
            "ADMIN_TOKENS": TOKENS["admin"],
            "OPERATOR_TOKENS": TOKENS["operator"],
            "VIEWER_TOKENS": TOKENS["viewer"],
            "TRUSTED_KEYS": json.dumps(trusted),
            "GIN_MODE": "release",
            **(extra_env or {}),
        }
    )
    log = workdir / "server.log"
    process = subprocess.Popen(
        [str(bin_dir / "beacon"), "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    url = None
    while time.monotonic() < deadline and url is None:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            url = match.group(1)
    while url is not None and time.monotonic() < deadline:  # printed before uvicorn listens: wait for it
        try:
            httpx.get(f"{url}/health/live", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"beacon serve did not start:\n{log.read_text()[-4000:]}")
    env.update({"RUNNER": url, "ADMIN_TOKEN": TOKENS["admin"], "OPERATOR_TOKEN": TOKENS["operator"]})
    return Served(url, workdir, env, process, log)


def stop_server(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait(timeout=10)
