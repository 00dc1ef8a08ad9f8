"""Run Alembic migrations programmatically (on start and from ``beacon db upgrade``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The Alembic script directory (``beacon/store/migrations``)."""


def alembic_config(connection: Any | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Any, revision: str = "head") -> None:
    """Upgrade the database behind a synchronous connection (use through ``run_sync``)."""
    command.upgrade(alembic_config(connection), revision)


def current_revision(connection: Any) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
