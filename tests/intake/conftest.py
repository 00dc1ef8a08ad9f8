"""Fixtures for intake tests: a runtime on both stores with one trusted signing key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from beacon.boot import open_runtime
from beacon.intake import sign_jobspec, stamp
from beacon.keys import Ed25519Key
from beacon.runtime import Runtime


@pytest.fixture
def signing_key() -> Ed25519Key:
    return Ed25519Key.generate()


@pytest.fixture
async def runtime(
    database_url: str, make_settings: Callable[..., Any], signing_key: Ed25519Key
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        database_url=database_url,
        trusted_keys=json.dumps([{"kid": "dev", "public_key": signing_key.public_key_b64}]),
    )
    async with open_runtime(settings) as rt:
        yield rt


@pytest.fixture
def sign(signing_key: Ed25519Key) -> Callable[[dict[str, Any]], bytes]:
    """Stamp (timestamp, nonce) and sign a document; return the body bytes."""

    def build(document: dict[str, Any]) -> bytes:
        return json.dumps(sign_jobspec(stamp(document), signing_key)).encode()

    return build
