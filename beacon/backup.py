"""``beacon backup`` / ``beacon restore``: the database and the queue's state in one file.

The file is gzip-compressed JSON lines (``beacon-backup/v1``)::

    {"format": "beacon-backup/v1", "schema_revision": …, "tables": [...], …}   header
    {"t": "jobs", "r": {...}}                                                    one line per row
    {"q": "EU", "live": {...}}                                                   queue messages
    {"end": true, "counts": {...}, "queue": {...}}                               trailer

Rows are read in one snapshot (PostgreSQL ``REPEATABLE READ READ ONLY``; SQLite one read
transaction), in dependency order, bytes as ``{"$b64": …}``. A file without its trailer, or whose
counts differ from its rows, is refused on restore. Restore goes into an empty, migrated database
of the same schema revision (SQLite or PostgreSQL, either way round); the queue's messages come
back as outbox rows, so the relay stays the only writer to the queue, and executions whose
message was in flight are found again by the sweeper anyway.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from beacon import __version__
from beacon.clock import iso_time
from beacon.config import REGIONS
from beacon.queue.base import Queue
from beacon.queue.message import Message, MessageError, outbox_row
from beacon.store import Database, now
from beacon.store.tables import executions, metadata, outbox
from beacon.worker.lifecycle import EXECUTION_ACTIVE

FORMAT = "beacon-backup/v1"
BATCH = 1000

Progress = Callable[[str, int], None]
"""Called with (table name, rows so far) while a backup or restore runs."""


class BackupError(Exception):
    """The backup file cannot be restored (or written); the message says why."""


@dataclass
class BackupSummary:
    path: str
    schema_revision: str | None
    counts: dict[str, int] = field(default_factory=dict)
    queue: dict[str, int] = field(default_factory=dict)
    requeued: int = 0


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and "$b64" in value:
        return base64.b64decode(value["$b64"])
    return value


async def _schema_revision(db: Database) -> str | None:
    from beacon.store.migrate import current_revision

    async with db.connect() as conn:
        revision: str | None = await conn.run_sync(current_revision)
    return revision


async def _rows(db: Database, progress: Progress | None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    async with db.connect() as conn:
        if db.is_postgres:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            await conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        for table in metadata.sorted_tables:
            key = list(table.primary_key.columns) or list(table.columns)
            result = await conn.stream(sa.select(table).order_by(*key))
            count = 0
            async for row in result:
                count += 1
                if progress and count % BATCH == 0:
                    progress(table.name, count)
                yield table.name, {name: _encode(value) for name, value in row._mapping.items()}
            if progress:
                progress(table.name, count)


async def write_backup(
    db: Database, queue: Queue | None, path: Path, progress: Progress | None = None
) -> BackupSummary:
    """Write the database (one snapshot) and the queue's live messages to ``path``."""
    summary = BackupSummary(str(path), await _schema_revision(db))
    tmp = path.with_name(path.name + ".partial")
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        _line(
            out,
            {
                "format": FORMAT,
                "created_at": iso_time(now()),
                "runner_version": __version__,
                "schema_revision": summary.schema_revision,
                "dialect": db.dialect,
                "tables": [table.name for table in metadata.sorted_tables],
            },
        )
        async for name, row in _rows(db, progress):
            _line(out, {"t": name, "r": row})
            summary.counts[name] = summary.counts.get(name, 0) + 1
        if queue is not None:
            for region in REGIONS:
                payloads = await queue.live_payloads(region)
                for payload in payloads:
                    _line(out, {"q": region, "live": payload})
                summary.queue[region] = len(payloads)
        _line(out, {"end": True, "counts": summary.counts, "queue": summary.queue})
    tmp.replace(path)
    return summary


def _line(out: IO[str], value: Any) -> None:
    out.write(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    out.write("\n")


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
    except (OSError, EOFError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not a readable Beacon backup: {exc}") from exc


def check_backup(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``path`` through once: (header, trailer) if it is complete and its counts add up."""
    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    counts: dict[str, int] = {}
    for line in _lines(path):
        if header is None:
            if line.get("format") != FORMAT:
                raise BackupError(f"{path} is not a {FORMAT} file")
            header = line
        elif trailer is not None:
            raise BackupError(f"{path} has data after its trailer")
        elif "t" in line:
            counts[line["t"]] = counts.get(line["t"], 0) + 1
        elif line.get("end"):
            trailer = line
    if header is None:
        raise BackupError(f"{path} is empty")
    if trailer is None:
        raise BackupError(f"{path} is incomplete (no trailer): the backup did not finish")
    if counts != trailer.get("counts"):
        raise BackupError(
            f"row counts differ from the trailer ({counts} vs {trailer.get('counts')}): damaged file"
        )
    return header, trailer


async def restore_backup(
    db: Database, path: Path, *, progress: Progress | None = None, allow_other_revision: bool = False
) -> BackupSummary:
    """Load ``path`` into an empty, migrated database (one transaction: all of it or nothing)."""
    header, trailer = check_backup(path)
    revision = await _schema_revision(db)
    if header.get("schema_revision") != revision and not allow_other_revision:
        raise BackupError(
            f"the backup has schema revision {header.get('schema_revision')}, this database {revision}; "
            "restore with the Beacon version that wrote it, then upgrade"
        )
    summary = BackupSummary(str(path), revision, dict(trailer["counts"]), dict(trailer.get("queue", {})))
    tables = {table.name: table for table in metadata.sorted_tables}
    live: list[tuple[str, Any]] = []
    async with db.begin() as conn:
        for table in metadata.sorted_tables:
            if await conn.scalar(sa.select(sa.func.count()).select_from(table)):
                raise BackupError(f"table {table.name} is not empty: restore into an empty database")
        pending: list[dict[str, Any]] = []
        current: str | None = None
        done = 0

        async def flush() -> None:
            nonlocal done
            if current is not None and pending:
                await conn.execute(tables[current].insert(), pending)
                done += len(pending)
                if progress:
                    progress(current, done)
            pending.clear()

        for line in _lines(path):
            if "t" in line:
                if line["t"] not in tables:
                    raise BackupError(f"the backup has a table this schema lacks: {line['t']}")
                if line["t"] != current or len(pending) >= BATCH:
                    await flush()
                    if line["t"] != current:
                        current, done = line["t"], 0
                pending.append({key: _decode(value) for key, value in line["r"].items()})
            elif "q" in line:
                live.append((line["q"], line["live"]))
        await flush()
        if db.is_postgres:
            await _reset_sequences(conn)
        summary.requeued = await _requeue_live(conn, live)
    return summary


async def _reset_sequences(conn: Any) -> None:
    """After explicit ids were inserted, move PostgreSQL's id sequences past them."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            sequence = await conn.scalar(sa.select(sa.func.pg_get_serial_sequence(table.name, column.name)))
            if sequence:
                top = await conn.scalar(sa.select(sa.func.max(column)))
                await conn.execute(sa.select(sa.func.setval(sequence, (top or 0) + 1, False)))


async def _requeue_live(conn: Any, live: list[tuple[str, Any]]) -> int:
    """Queue messages from the backup → outbox rows, for executions that are still unfinished."""
    wanted: dict[str, Message] = {}
    for region, payload in live:
        try:
            message = Message.parse(payload)
        except MessageError:
            continue
        if message.region == region:
            wanted.setdefault(message.execution_id, message)
    if not wanted:
        return 0
    active = {
        row.id
        for row in await conn.execute(
            sa.select(executions.c.id).where(
                executions.c.id.in_(list(wanted)), executions.c.status.in_(list(EXECUTION_ACTIVE))
            )
        )
    }
    at = now()
    rows = [
        outbox_row(
            Message(message.execution_id, message.job_id, message.region, enqueued_at=at, reason="restore")
        )
        for execution_id, message in wanted.items()
        if execution_id in active
    ]
    if rows:
        await conn.execute(outbox.insert(), rows)
    return len(rows)
