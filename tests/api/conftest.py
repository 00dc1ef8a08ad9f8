"""API test fixtures: a real runtime (SQLite by default; modules override ``store_url`` to add
PostgreSQL), the app built by ``create_app``, and an httpx client speaking ASGI to it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from beacon.api import create_app
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
    rt = await Runtime.start(settings)
    yield rt
    await rt.stop()


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime.settings, runtime)


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
