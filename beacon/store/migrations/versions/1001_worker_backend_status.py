"""Workers report what serves their region: ``workers.backend_status``.

Revision ID: 1001
Revises: 0001
Create Date: 2026-12-03

The executor's own status (backend, models and digests, host, GPU facts; Ollama version and
models; yagna identity, offers, payment account) as the worker last read it, so the API and the
Day-1 harness can say which component actually served each region (GET /admin/ops/workers).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "1001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(
            sa.Column(
                "backend_status",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                nullable=True,
                comment="the executor's status and the host's facts, as the worker last read them",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("backend_status")
