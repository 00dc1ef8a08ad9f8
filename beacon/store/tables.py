"""SQLAlchemy Core tables: the one schema, for SQLite and PostgreSQL alike.

Times are UNIX epoch seconds as double precision (portable, ordered, microsecond-exact here).
JSON columns are JSONB on PostgreSQL. Alembic migrations (``beacon/store/migrations``) create them;
``tests/store/test_migrations.py`` checks that the migrations and this module agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
Time = sa.Float(precision=53)
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's rowid alias must be INTEGER

# --- intake -----------------------------------------------------------------------------------------

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("benchmark", sa.String(128), nullable=False),
    sa.Column("spec", JSON, nullable=False, comment="normalised JobSpec (after verification)"),
    sa.Column("raw", sa.Text, nullable=False, comment="the signed document, verbatim"),
    sa.Column("spec_hash", sa.String(64), nullable=False, comment="hex SHA-256 of the verbatim document"),
    sa.Column("signature_scheme", sa.String(16), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("kid", sa.String(128)),
    sa.Column("regions", JSON, nullable=False),
    sa.Column("total_executions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("request_id", sa.String(128)),
    sa.Column("error", JSON),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("bundle_cid", sa.String(128)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("enqueued_at", Time),
    sa.Column("started_at", Time, comment="first execution started: the job's deadline counts from here"),
    sa.Column("finished_at", Time),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_jobs_created_at_id", "created_at", "id"),
    sa.Index("ix_jobs_status", "status"),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(128), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("detail", JSON),
    sa.Index("ix_job_events_job_id_at", "job_id", "at"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, comment="SHA-256 of the request body"),
    sa.Column("state", sa.String(16), nullable=False, comment="in_flight | done"),
    sa.Column("job_id", sa.String(128)),
    sa.Column("response_status", sa.Integer),
    sa.Column("response_body", sa.LargeBinary),
    sa.Column("response_headers", JSON),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
)

nonces = sa.Table(
    "nonces",
    metadata,
    sa.Column("public_key", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(255), primary_key=True),
    sa.Column("expires_at", Time, nullable=False),
    sa.Index("ix_nonces_expires_at", "expires_at"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(64), nullable=False, comment="the region stream"),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("published_at", Time),
    sa.Index(
        "ix_outbox_unpublished",
        "id",
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    ),
)

# --- execution --------------------------------------------------------------------------------------

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(128), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("question_id", sa.String(128), nullable=False),
    sa.Column(
        "variant",
        sa.String(16),
        nullable=False,
        server_default="neutral",
        comment="system-prompt variant: neutral | region",
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("backend", sa.String(32)),
    sa.Column("backend_version", sa.String(64)),
    sa.Column("provider_id", sa.String(256)),
    sa.Column("served_region", sa.String(16)),
    sa.Column("model_digest", sa.String(128)),
    sa.Column("output", sa.Text),
    sa.Column("output_hash", sa.String(64)),
    sa.Column("tokens_in", sa.Integer),
    sa.Column("tokens_out", sa.Integer),
    sa.Column("timings", JSON),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_detail", sa.Text),
    sa.Column("classification", JSON),
    sa.Column("receipt_id", sa.String(64)),
    sa.Column("receipt", JSON),
    sa.Column("leaf_index", sa.BigInteger),
    sa.Column("worker_id", sa.String(128)),
    sa.Column("queued_at", Time),
    sa.Column("started_at", Time),
    sa.Column("finished_at", Time),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("job_id", "region", "model", "question_id", "variant"),
    sa.Index("ix_executions_created_at_id", "created_at", "id"),
    sa.Index("ix_executions_status", "status"),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("backend", sa.String(32), nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, comment="running | draining | stopped"),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("current", JSON, comment="execution ids in progress"),
    sa.Column("public_key", sa.String(64), comment="the key this worker signs receipts with"),
    sa.Column("version", sa.String(64)),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("heartbeat_at", Time, nullable=False),
    sa.Column("stopped_at", Time),
    sa.Column(
        "backend_status",
        JSON,
        comment="the executor's status and the host's facts, as the worker last read them",
    ),
    sa.Index("ix_workers_heartbeat_at", "heartbeat_at"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("message_id", sa.String(128), nullable=False),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("execution_id", sa.String(64)),
    sa.Column("job_id", sa.String(128)),
    sa.Column("error_code", sa.String(64)),
    sa.Column("requeued_at", Time),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_dead_letters_region_id", "region", "id"),
)

job_finalizations = sa.Table(
    "job_finalizations",
    metadata,
    sa.Column("job_id", sa.String(128), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False, comment="the finalizer's order: lower runs first"),
    sa.Column("state", sa.String(16), nullable=False, comment="pending | running | retry | done | failed"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("lease_until", Time, comment="a running finalizer whose lease passed is taken over"),
    sa.Column("next_at", Time, comment="when a retry is due"),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_job_finalizations_state", "state"),
)

runner_keys = sa.Table(
    "runner_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("first_seen_at", Time, nullable=False),
    sa.Column("last_seen_at", Time, nullable=False),
    comment="every key that has signed receipts here (GET /api/v1/keys), kept after its workers are gone",
)

# --- administration ---------------------------------------------------------------------------------

admin_config_versions = sa.Table(
    "admin_config_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("config", JSON, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False, comment="role:token-fingerprint, never the token"),
    sa.Column("change", JSON, comment="the partial update that produced this version"),
    sa.Column("reason", sa.String(64), nullable=False, comment="initial | update | revert | revert-safe"),
    sa.Column("created_at", Time, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("at", Time, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("detail", JSON),
    sa.Column("request_id", sa.String(128)),
)

# --- transparency log -------------------------------------------------------------------------------

tlog_leaves = sa.Table(
    "tlog_leaves",
    metadata,
    sa.Column("idx", BigInt, primary_key=True, autoincrement=False, comment="leaf index (SQLite: the rowid)"),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("entry", sa.LargeBinary, nullable=False, comment="the leaf data: JCS bytes of the entry"),
    sa.Column("kind", sa.String(32), nullable=False, comment="receipt | diff-report | harness-receipt"),
    sa.Column("ref", sa.String(128), nullable=False, comment="receipt id (or report id): appended once"),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("ref"),
)

tlog_nodes = sa.Table(
    "tlog_nodes",
    metadata,
    sa.Column(
        "id",
        BigInt,
        primary_key=True,
        autoincrement=False,
        comment="flat in-order number of the perfect subtree (level, i): (i << (level + 1)) + (1 << level) - 1",
    ),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    comment="hashes of complete subtrees of level >= 1 (level 0 is tlog_leaves.leaf_hash); "
    "node (level, i) covers leaves [i·2^level, (i+1)·2^level)",
)

tlog_checkpoints = sa.Table(
    "tlog_checkpoints",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False, comment="the C2SP signed note, verbatim"),
    sa.Column("created_at", Time, nullable=False),
)

# --- content-addressed store ------------------------------------------------------------------------

content = sa.Table(
    "content",
    metadata,
    sa.Column("cid", sa.String(128), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("pinned_remote", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", Time, nullable=False),
)

# --- analysis ---------------------------------------------------------------------------------------

diff_reports = sa.Table(
    "diff_reports",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(128), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("regions", JSON, nullable=False),
    sa.Column("analysis_type", sa.String(32), nullable=False),
    sa.Column("report", JSON, nullable=False, comment="the signed DifferenceReport"),
    sa.Column("leaf_index", sa.BigInteger),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("job_id"),
    sa.Index("ix_diff_reports_created_at_id", "created_at", "id"),
)
