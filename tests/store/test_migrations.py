"""Migrations and ``beacon.store.tables`` describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from beacon.store import Database
from beacon.store.migrate import current_revision, head_revision
from beacon.store.tables import metadata


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": False}
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_tables(db: Database) -> None:
    async with db.connect() as conn:
        assert await conn.run_sync(current_revision) == head_revision()
        assert await conn.run_sync(_differences) == []


async def test_migrations_are_idempotent_and_reversible(database_url: str) -> None:
    from alembic import command

    from beacon.store.migrate import alembic_config

    database = Database(database_url)
    try:
        await database.migrate()
        await database.migrate()  # a second upgrade at head is a no-op
        async with database.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), "base"))
        async with database.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        assert tables <= {"alembic_version"}
        await database.migrate()
        async with database.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await database.close()


def test_every_table_has_a_primary_key() -> None:
    missing = [table.name for table in metadata.sorted_tables if not table.primary_key.columns]
    assert missing == []


@pytest.mark.parametrize("table", sorted(metadata.tables))
def test_time_columns_are_epoch_seconds(table: str) -> None:
    for column in metadata.tables[table].columns:
        if column.name.endswith("_at") or column.name == "at":
            assert isinstance(column.type, sa.Float), f"{table}.{column.name} should be epoch seconds"
