"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Written out from ``beacon.store.tables`` (alembic autogenerate, then reviewed); a test keeps the two in
step on SQLite and PostgreSQL (tests/store/test_migrations.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_config_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "actor", sa.String(length=128), nullable=False, comment="role:token-fingerprint, never the token"
        ),
        sa.Column(
            "change",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
            comment="the partial update that produced this version",
        ),
        sa.Column(
            "reason", sa.String(length=64), nullable=False, comment="initial | update | revert | revert-safe"
        ),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_admin_config_versions")),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.Float(precision=53), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "content",
        sa.Column("cid", sa.String(length=128), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("pinned_remote", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("cid", name=op.f("pk_content")),
    )
    op.create_table(
        "dead_letters",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=128), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("requeued_at", sa.Float(precision=53), nullable=True),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index("ix_dead_letters_region_id", "dead_letters", ["region", "id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False, comment="SHA-256 of the request body"),
        sa.Column("state", sa.String(length=16), nullable=False, comment="in_flight | done"),
        sa.Column("job_id", sa.String(length=128), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "response_headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("expires_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("benchmark", sa.String(length=128), nullable=False),
        sa.Column(
            "spec",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
            comment="normalised JobSpec (after verification)",
        ),
        sa.Column("raw", sa.Text(), nullable=False, comment="the signed document, verbatim"),
        sa.Column(
            "spec_hash", sa.String(length=64), nullable=False, comment="hex SHA-256 of the verbatim document"
        ),
        sa.Column("signature_scheme", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=128), nullable=True),
        sa.Column(
            "regions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("total_executions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column(
            "error", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=True
        ),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("bundle_cid", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("enqueued_at", sa.Float(precision=53), nullable=True),
        sa.Column(
            "started_at",
            sa.Float(precision=53),
            nullable=True,
            comment="first execution started: the job's deadline counts from here",
        ),
        sa.Column("finished_at", sa.Float(precision=53), nullable=True),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_created_at_id", "jobs", ["created_at", "id"], unique=False)
    op.create_index("ix_jobs_status", "jobs", ["status"], unique=False)
    op.create_table(
        "nonces",
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("public_key", "nonce", name=op.f("pk_nonces")),
    )
    op.create_index("ix_nonces_expires_at", "nonces", ["expires_at"], unique=False)
    op.create_table(
        "outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("topic", sa.String(length=64), nullable=False, comment="the region stream"),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("published_at", sa.Float(precision=53), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "runner_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.Float(precision=53), nullable=False),
        sa.Column("last_seen_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_runner_keys")),
        comment="every key that has signed receipts here (GET /api/v1/keys), kept after its workers are gone",
    )
    op.create_table(
        "tlog_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, comment="the C2SP signed note, verbatim"),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_tlog_checkpoints")),
    )
    op.create_table(
        "tlog_leaves",
        sa.Column(
            "idx",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
            comment="leaf index (SQLite: the rowid)",
        ),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False, comment="the leaf data: JCS bytes of the entry"),
        sa.Column(
            "kind", sa.String(length=32), nullable=False, comment="receipt | diff-report | harness-receipt"
        ),
        sa.Column(
            "ref", sa.String(length=128), nullable=False, comment="receipt id (or report id): appended once"
        ),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_tlog_leaves")),
        sa.UniqueConstraint("ref", name=op.f("uq_tlog_leaves_ref")),
    )
    op.create_table(
        "tlog_nodes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
            comment="flat in-order number of the perfect subtree (level, i): (i << (level + 1)) + (1 << level) - 1",
        ),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tlog_nodes")),
        comment="hashes of complete subtrees of level >= 1 (level 0 is tlog_leaves.leaf_hash); node (level, i) covers leaves [i·2^level, (i+1)·2^level)",
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, comment="running | draining | stopped"),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column(
            "current",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
            comment="execution ids in progress",
        ),
        sa.Column(
            "public_key",
            sa.String(length=64),
            nullable=True,
            comment="the key this worker signs receipts with",
        ),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.Float(precision=53), nullable=False),
        sa.Column("heartbeat_at", sa.Float(precision=53), nullable=False),
        sa.Column("stopped_at", sa.Float(precision=53), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index("ix_workers_heartbeat_at", "workers", ["heartbeat_at"], unique=False)
    op.create_table(
        "diff_reports",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "regions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("analysis_type", sa.String(length=32), nullable=False),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
            comment="the signed DifferenceReport",
        ),
        sa.Column("leaf_index", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_diff_reports_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diff_reports")),
        sa.UniqueConstraint("job_id", name=op.f("uq_diff_reports_job_id")),
    )
    op.create_index("ix_diff_reports_created_at_id", "diff_reports", ["created_at", "id"], unique=False)
    op.create_table(
        "executions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("question_id", sa.String(length=128), nullable=False),
        sa.Column(
            "variant",
            sa.String(length=16),
            server_default="neutral",
            nullable=False,
            comment="system-prompt variant: neutral | region",
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=True),
        sa.Column("backend_version", sa.String(length=64), nullable=True),
        sa.Column("provider_id", sa.String(length=256), nullable=True),
        sa.Column("served_region", sa.String(length=16), nullable=True),
        sa.Column("model_digest", sa.String(length=128), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("output_hash", sa.String(length=64), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column(
            "timings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column(
            "classification",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("receipt_id", sa.String(length=64), nullable=True),
        sa.Column(
            "receipt",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("leaf_index", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("queued_at", sa.Float(precision=53), nullable=True),
        sa.Column("started_at", sa.Float(precision=53), nullable=True),
        sa.Column("finished_at", sa.Float(precision=53), nullable=True),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_executions_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint(
            "job_id",
            "region",
            "model",
            "question_id",
            "variant",
            name=op.f("uq_executions_job_id_region_model_question_id_variant"),
        ),
    )
    op.create_index("ix_executions_created_at_id", "executions", ["created_at", "id"], unique=False)
    op.create_index("ix_executions_status", "executions", ["status"], unique=False)
    op.create_table(
        "job_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(precision=53), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    op.create_index("ix_job_events_job_id_at", "job_events", ["job_id", "at"], unique=False)
    op.create_table(
        "job_finalizations",
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "position", sa.Integer(), nullable=False, comment="the finalizer's order: lower runs first"
        ),
        sa.Column(
            "state", sa.String(length=16), nullable=False, comment="pending | running | retry | done | failed"
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "lease_until",
            sa.Float(precision=53),
            nullable=True,
            comment="a running finalizer whose lease passed is taken over",
        ),
        sa.Column("next_at", sa.Float(precision=53), nullable=True, comment="when a retry is due"),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_finalizations_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "name", name=op.f("pk_job_finalizations")),
    )
    op.create_index("ix_job_finalizations_state", "job_finalizations", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_finalizations_state", table_name="job_finalizations")
    op.drop_table("job_finalizations")
    op.drop_index("ix_job_events_job_id_at", table_name="job_events")
    op.drop_table("job_events")
    op.drop_index("ix_executions_status", table_name="executions")
    op.drop_index("ix_executions_created_at_id", table_name="executions")
    op.drop_table("executions")
    op.drop_index("ix_diff_reports_created_at_id", table_name="diff_reports")
    op.drop_table("diff_reports")
    op.drop_index("ix_workers_heartbeat_at", table_name="workers")
    op.drop_table("workers")
    op.drop_table("tlog_nodes")
    op.drop_table("tlog_leaves")
    op.drop_table("tlog_checkpoints")
    op.drop_table("runner_keys")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox")
    op.drop_index("ix_nonces_expires_at", table_name="nonces")
    op.drop_table("nonces")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_index("ix_jobs_created_at_id", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_dead_letters_region_id", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("content")
    op.drop_table("audit_log")
    op.drop_table("admin_config_versions")
