"""Persistence: SQLAlchemy Core tables, Alembic migrations, and the database handle."""

from beacon.store.db import Database, DatabaseUnavailable, now

__all__ = ["Database", "DatabaseUnavailable", "now"]
