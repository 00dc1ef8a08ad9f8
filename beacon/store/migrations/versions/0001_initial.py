"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

While the schema is young this revision creates it from ``beacon.store.tables``; it is frozen into
explicit operations before the first release (tests/store/test_migrations.py keeps both in step).
"""

from __future__ import annotations

from alembic import op

from beacon.store.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(bind=op.get_bind())


def downgrade() -> None:
    metadata.drop_all(bind=op.get_bind())
