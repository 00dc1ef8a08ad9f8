"""Shared pytest fixtures: real PostgreSQL and Redis of this machine, isolated per test.

Tests that need a service skip with a loud reason when it is unreachable, and fail under ``CI=true``
(where .ci/run has started both). Each PostgreSQL test gets a fresh database cloned from a migrated
template; each Redis test gets its own key prefix, so suites (and several runs) never collide.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import (
    IN_CI,
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_HOST,
    REDIS_PORT,
    require_service,
)


def pg_admin_url(database: str = "postgres") -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def _pg_admin(statements: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, made once per test session."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"beacon_tpl_{uuid.uuid4().hex[:10]}"

    async def build() -> None:
        from beacon.store import Database

        await _pg_admin([f'CREATE DATABASE "{name}"'])
        db = Database(pg_admin_url(name))
        try:
            await db.migrate()
        finally:
            await db.close()

    asyncio.run(build())
    yield name
    asyncio.run(_pg_admin([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']))


@pytest.fixture
def postgres_url(pg_template: str) -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test (dropped afterwards)."""
    name = f"beacon_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin([f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"']))
    yield pg_admin_url(name)
    asyncio.run(_pg_admin([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file for this test (migrated on first use by Database.migrate)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run a test on both stores: SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Any]:
    """A migrated Database on both stores."""
    from beacon.store import Database

    database = Database(database_url)
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix owned by this test; its keys are deleted afterwards."""
    import redis.asyncio as redis

    prefix = f"beacon-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Build Settings isolated from the caller's environment and working directory."""
    from beacon.config import Settings, without_settings

    kept = without_settings(os.environ)
    for variable in list(os.environ):
        if variable not in kept:
            monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("BEACON_ENV_FILE", str(tmp_path / "no.env"))

    def build(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        return Settings(**overrides)

    return build


# --- the Golem devnet (beacon golem devnet): one whole local Golem network for the session ------------------
@pytest.fixture(scope="session")
def golem_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Router, anvil with tGLM, a requestor yagna and one provider yagna per region (US, EU, ASIA).

    Started once, on first use (about 10 s); skips loudly where it cannot start (no anvil: `make setup`
    installs it with npm), fails under CI=true. Afterwards every process of it must be gone.
    """
    from beacon.golem import devnet as dn

    root = tmp_path_factory.mktemp("golem-devnet")
    try:
        net = dn.up(root)
    except dn.DevnetError as exc:
        if IN_CI:
            pytest.fail(f"the Golem devnet did not start (CI=true: `make setup` installs anvil): {exc}")
        pytest.skip(f"SKIPPED LOUDLY: the Golem devnet did not start here: {exc}")
    try:
        yield net
    finally:
        dn.down(root)
        left = dn.processes_under(root)
        assert not left, f"processes of the Golem devnet left after the suite: {left}"
