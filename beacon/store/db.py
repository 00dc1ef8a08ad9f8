"""The database: one async engine, SQLite (embedded) or PostgreSQL (service), same code paths.

SQLite runs with one connection per process and ``BEGIN IMMEDIATE`` transactions, so writers never
meet ``SQLITE_BUSY`` inside a process and several processes serialise on the file lock. Never open a
second connection while holding one: pass the connection down instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool


class DatabaseUnavailable(Exception):
    """The database cannot be reached (connection refused, server shutting down, …)."""


def json_dumps(value: Any) -> str:
    """JSON for JSON columns: orjson (several times faster), the standard library for what it refuses."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # e.g. integers beyond 64 bits, non-string keys
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def now() -> float:
    """The store's clock: UNIX epoch seconds."""
    return time.time()


class Database:
    """An async engine plus the few dialect differences the repositories need."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.dialect == "sqlite":
            self._prepare_sqlite_path(url)
            self.engine: AsyncEngine = create_async_engine(
                url,
                echo=echo,
                poolclass=AsyncAdaptedQueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=60,
                connect_args={"timeout": 30, "check_same_thread": False},
                json_serializer=json_dumps,
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)
        else:
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_timeout=10,
                connect_args={"command_timeout": 30, "server_settings": {"application_name": "beacon"}},
                json_serializer=json_dumps,
            )

    @staticmethod
    def _prepare_sqlite_path(url: str) -> None:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success and rolled back on error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (SQLite still serialises it with writers of this process)."""
        async with self.engine.connect() as conn:
            yield conn

    def insert(self, table: sa.Table) -> Any:
        """A dialect-specific INSERT that supports ``on_conflict_do_nothing``/``_do_update``."""
        return postgresql.insert(table) if self.is_postgres else sqlite.insert(table)

    async def ping(self, within: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(within), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def migrate(self) -> None:
        """Apply the Alembic migrations up to head."""
        from beacon.store.migrate import upgrade

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
