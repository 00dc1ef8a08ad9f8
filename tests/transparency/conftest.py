"""Fixtures for the transparency tests: a migrated database and a log on it (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from beacon.keys import Ed25519Key
from beacon.store import Database
from beacon.transparency.log import TransparencyLog
from beacon.transparency.note import Signer

ORIGIN = "beacon.test/log"


@pytest.fixture
def log_key() -> Ed25519Key:
    return Ed25519Key.from_seed(bytes(range(32)))


@pytest.fixture
async def tlog(db: Database, log_key: Ed25519Key) -> AsyncIterator[TransparencyLog]:
    log = TransparencyLog(db, Signer(ORIGIN, log_key), interval_s=3600, max_leaves=10**9)
    yield log
    await log.aclose()
