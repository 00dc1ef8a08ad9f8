"""The persistent transparency log: one RFC 6962 tree in the runner's database.

Storage (``beacon/store/tables.py``):

* ``tlog_leaves`` — one row per leaf: index, leaf hash, the entry bytes, kind and a unique ``ref``;
* ``tlog_nodes`` — the hash of every *perfect* subtree of level ≥ 1, written once when its last leaf
  arrives (leaf ``i`` completes one node per trailing one-bit of ``i``: append is O(log n), O(1)
  amortised);
* ``tlog_checkpoints`` — every signed checkpoint (C2SP note), keyed by tree size.

Any root, inclusion proof or consistency proof is the fold of at most ~2·log2(n) stored hashes
(:mod:`beacon.transparency.merkle`), fetched in one query: the tree is never rebuilt.

Sequencing: an append runs inside the caller's transaction and takes the sequencer lock first —
``pg_advisory_xact_lock`` on PostgreSQL, the ``BEGIN IMMEDIATE`` write lock on SQLite — so any number
of workers and processes produce one linear log; the primary key on the index is the last line of
defence. Appends are idempotent on ``ref``. The caller's transaction must be READ COMMITTED (the
default): the size is read after the lock is granted.

Checkpoints: :meth:`TransparencyLog.publish_checkpoint` signs the current size and root, after
proving the new tree consistent with the latest checkpoint; a log whose stored hashes cannot be
proven consistent is never signed again (:class:`LogCorruption`). Publication is driven by a small
background task (every ``interval_s`` when leaves are waiting, or as soon as ``max_leaves`` are) and
on demand, when a proof is asked for a leaf that no checkpoint covers yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon.store import Database
from beacon.store.tables import tlog_checkpoints, tlog_leaves
from beacon.transparency.checkpoint import Checkpoint
from beacon.transparency.merkle import (
    EMPTY_ROOT,
    Node,
    ProofError,
    consistency_path,
    fold_subtrees,
    frontier,
    inclusion_path,
    leaf_hash,
    node_hash,
    nodes_for,
    parent_nodes,
    perfect_subtrees,
    verify_consistency,
)
from beacon.transparency.note import Signer, Verifier, split_note
from beacon.transparency.proof import make_proof

log = logging.getLogger("beacon.transparency")

SEQUENCER_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"beacon.transparency.sequencer").digest()[:8], "big", signed=True
)
"""The PostgreSQL advisory lock every appender and checkpoint publisher takes."""

MAX_ENTRY_BYTES = 4 << 20
LATEST_CACHE_S = 0.5
"""How long a process may answer "latest checkpoint" from memory."""
MAX_REF_LENGTH = 128
MAX_KIND_LENGTH = 32


class LogError(Exception):
    """Base class of the log's errors."""


class LogCorruption(LogError):
    """The stored tree contradicts itself or a published checkpoint; nothing more is signed."""


class NotFound(LogError):
    """A leaf, size or checkpoint that does not exist (yet)."""


@dataclass(frozen=True)
class LeafInput:
    """One entry to append."""

    kind: str
    ref: str
    entry: bytes


@dataclass(frozen=True)
class Leaf:
    index: int
    leaf_hash: bytes
    entry: bytes
    kind: str
    ref: str
    created_at: float


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    created_at: float


@dataclass(frozen=True)
class InclusionProof:
    """An inclusion proof bound to the signed checkpoint of the same size."""

    index: int
    size: int
    leaf_hash: bytes
    proof: list[bytes]
    checkpoint: StoredCheckpoint

    def tlog_proof(self, extra: bytes | None = None) -> str:
        """The proof as ``c2sp.org/tlog-proof@v1`` text."""
        return make_proof(self.index, self.proof, self.checkpoint.note, extra)


def _validate(item: LeafInput) -> None:
    if not item.ref or len(item.ref) > MAX_REF_LENGTH:
        raise ValueError(f"ref must have 1..{MAX_REF_LENGTH} characters")
    if not item.kind or len(item.kind) > MAX_KIND_LENGTH:
        raise ValueError(f"kind must have 1..{MAX_KIND_LENGTH} characters")
    if not isinstance(item.entry, bytes):
        raise TypeError("entry must be bytes")
    if len(item.entry) > MAX_ENTRY_BYTES:
        raise ValueError(f"entry is larger than {MAX_ENTRY_BYTES} bytes")


class TransparencyLog:
    """The runner's log: RFC 6962 tree in the database, appended inside the caller's transaction."""

    def __init__(
        self,
        db: Database,
        signer: Signer,
        *,
        interval_s: float = 1.0,
        max_leaves: int = 256,
        clock: Any = time.time,
    ) -> None:
        self.db = db
        self.signer = signer
        self.interval_s = interval_s
        self.max_leaves = max_leaves
        self.clock = clock
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._known_checkpoint_size = 0
        self._latest: tuple[StoredCheckpoint, float] | None = None
        self._sql: _Sql = _PostgresSql() if db.is_postgres else _SqliteSql()
        self.last_error: str | None = None

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    # --- sequencing ------------------------------------------------------------------------------------

    async def _lock(self, conn: AsyncConnection) -> None:
        if self.db.is_postgres:
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock($1)", (SEQUENCER_LOCK_KEY,))
        # SQLite: the transaction began with BEGIN IMMEDIATE and holds the database's write lock.

    async def size(self, conn: AsyncConnection) -> int:
        """The number of leaves visible to ``conn``."""
        last = (await conn.exec_driver_sql(self._sql.last_index)).scalar()
        return 0 if last is None else int(last) + 1

    async def append(self, conn: AsyncConnection, *, kind: str, ref: str, entry: bytes) -> int:
        """Append one entry inside the caller's transaction; the same ``ref`` again returns its index."""
        return (await self.append_many(conn, [LeafInput(kind, ref, entry)]))[0]

    async def append_many(self, conn: AsyncConnection, items: Sequence[LeafInput]) -> list[int]:
        """Append entries in order inside the caller's transaction; return each one's leaf index.

        Refs already in the log (or repeated in ``items``) get the index they already have.
        """
        for item in items:
            _validate(item)
        if not items:
            return []
        await self._lock(conn)
        size, existing = await self._size_and_refs(conn, list({item.ref for item in items}))
        known = await self._read_nodes(conn, frontier(size))
        now = self.clock()
        leaves: list[LeafRow] = []
        nodes: list[tuple[int, bytes]] = []
        indices: list[int] = []
        assigned: dict[str, tuple[int, bytes]] = {}
        for item in items:
            hashed = leaf_hash(item.entry)
            previous = existing.get(item.ref) or assigned.get(item.ref)
            if previous is not None:
                if previous[1] != hashed:
                    log.warning(
                        "ref %s is already logged at %d with a different entry; keeping the first",
                        item.ref,
                        previous[0],
                    )
                indices.append(previous[0])
                continue
            index = size + len(leaves)
            assigned[item.ref] = (index, hashed)
            indices.append(index)
            leaves.append((index, hashed, item.entry, item.kind, item.ref, now))
            known[(0, index)] = hashed
            for level, i in parent_nodes(index):
                value = node_hash(known[(level - 1, 2 * i)], known[(level - 1, 2 * i + 1)])
                known[(level, i)] = value
                nodes.append((node_id(level, i), value))
        await self._sql.insert(conn, leaves, nodes)
        new_size = size + len(leaves)
        if new_size - self._known_checkpoint_size >= self.max_leaves:
            self._wake.set()
        return indices

    async def _size_and_refs(
        self, conn: AsyncConnection, refs: Sequence[str]
    ) -> tuple[int, dict[str, tuple[int, bytes]]]:
        """The log size and the leaves already logged under ``refs``, in one query."""
        size, found = 0, {}
        for ref, idx, hashed in await self._sql.select_many(conn, self._sql.size_and_refs, refs):
            if ref is None:
                size = int(idx) + 1
            else:
                found[str(ref)] = (int(idx), bytes(hashed))
        return size, found

    # --- reading the tree ------------------------------------------------------------------------------

    async def _read_nodes(self, conn: AsyncConnection, nodes: Iterable[Node]) -> dict[Node, bytes]:
        """The stored hashes of these perfect subtrees, in one query; LogCorruption if one is missing."""
        wanted = set(nodes)
        if not wanted:
            return {}
        by_id = {(0, i) if level == 0 else (1, node_id(level, i)): (level, i) for level, i in wanted}
        leaf_ids = [key for kind, key in by_id if kind == 0]
        inner_ids = [key for kind, key in by_id if kind == 1]
        rows = await self._sql.read_hashes(conn, leaf_ids, inner_ids)
        found = {by_id[(int(kind), int(key))]: bytes(value) for kind, key, value in rows}
        missing = wanted - found.keys()
        if missing:
            raise LogCorruption(f"stored tree is missing subtree hashes {sorted(missing)[:5]}")
        return found

    async def _hash_ranges(self, conn: AsyncConnection, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        stored = await self._read_nodes(conn, nodes_for(ranges))
        return [fold_subtrees([stored[n] for n in perfect_subtrees(b, e)]) for b, e in ranges]

    async def root(self, conn: AsyncConnection, size: int) -> bytes:
        """MTH of the first ``size`` leaves."""
        if size == 0:
            return EMPTY_ROOT
        return (await self._hash_ranges(conn, [(0, size)]))[0]

    async def inclusion_proof(self, conn: AsyncConnection, index: int, size: int) -> list[bytes]:
        """``PATH(index, D[size])`` from stored hashes."""
        return await self._hash_ranges(conn, inclusion_path(index, size))

    async def consistency_proof(self, conn: AsyncConnection, old_size: int, new_size: int) -> list[bytes]:
        """``PROOF(old_size, D[new_size])`` from stored hashes."""
        return await self._hash_ranges(conn, consistency_path(old_size, new_size))

    async def leaf(self, conn: AsyncConnection, index: int) -> Leaf | None:
        row = (await conn.execute(sa.select(tlog_leaves).where(tlog_leaves.c.idx == index))).first()
        return _leaf(row) if row is not None else None

    async def leaf_by_ref(self, conn: AsyncConnection, ref: str) -> Leaf | None:
        row = (await conn.execute(sa.select(tlog_leaves).where(tlog_leaves.c.ref == ref))).first()
        return _leaf(row) if row is not None else None

    # --- checkpoints -----------------------------------------------------------------------------------

    async def latest_checkpoint(self, conn: AsyncConnection) -> StoredCheckpoint | None:
        row = (
            await conn.execute(sa.select(tlog_checkpoints).order_by(tlog_checkpoints.c.size.desc()).limit(1))
        ).first()
        return _checkpoint(row) if row is not None else None

    async def checkpoint_of_size(self, conn: AsyncConnection, size: int) -> StoredCheckpoint | None:
        row = (await conn.execute(sa.select(tlog_checkpoints).where(tlog_checkpoints.c.size == size))).first()
        return _checkpoint(row) if row is not None else None

    def _due(self, size: int, latest: StoredCheckpoint | None) -> bool:
        if latest is None:
            return size > 0
        if size <= latest.size:
            return False
        return size - latest.size >= self.max_leaves or self.clock() - latest.created_at >= self.interval_s

    async def publish_checkpoint(self, *, force: bool = True) -> StoredCheckpoint | None:
        """Sign the current tree, proven consistent with the latest checkpoint; return the latest one.

        Without ``force`` a checkpoint is signed only when due (interval or leaf count). A tree of the
        same size as the latest checkpoint is never signed again.
        """
        if not force:
            # Look before taking the sequencer lock: every process (each worker too) runs a publisher, and
            # most of its periodic calls find nothing due; they must not queue behind appends for that.
            async with self.db.connect() as conn:
                size = await self.size(conn)
                latest = await self.latest_checkpoint(conn)
            if not self._due(size, latest):
                if latest is not None:
                    self._remember(latest)
                return latest
        async with self.db.begin() as conn:
            result = await self._publish(conn, force=force)  # decides again under the lock
        if result is not None:
            self._remember(result)  # committed: safe to serve from memory
        return result

    async def _publish(self, conn: AsyncConnection, *, force: bool) -> StoredCheckpoint | None:
        await self._lock(conn)
        size = await self.size(conn)
        latest = await self.latest_checkpoint(conn)
        if latest is not None:
            self._known_checkpoint_size = latest.size
        if latest is not None and latest.size == size:
            return latest
        if not force and not self._due(size, latest):
            return latest
        root = await self.root(conn, size)
        if latest is not None:
            await self._prove_extends(conn, latest, size, root)
        checkpoint = Checkpoint(self.origin, size, root)
        note = checkpoint.sign(self.signer)
        stored = StoredCheckpoint(size, root, note, self.clock())
        await conn.execute(
            tlog_checkpoints.insert().values(size=size, root=root, note=note, created_at=stored.created_at)
        )
        self._known_checkpoint_size = size
        log.info("checkpoint published", extra={"origin": self.origin, "size": size, "root": root.hex()})
        return stored

    async def _prove_extends(
        self, conn: AsyncConnection, latest: StoredCheckpoint, size: int, root: bytes
    ) -> None:
        """Refuse (LogCorruption) unless the tree of ``size`` extends the latest signed checkpoint."""
        signed_text, _ = split_note(latest.note)
        if Checkpoint.parse_text(signed_text).root != latest.root:
            raise self._corrupt(f"checkpoint {latest.size}: stored root differs from its signed note")
        if size < latest.size:
            raise self._corrupt(f"the log has {size} leaves but checkpoint {latest.size} was signed")
        if latest.size == 0:
            return  # every tree extends the empty tree
        proof = await self.consistency_proof(conn, latest.size, size)
        try:
            verify_consistency(latest.size, size, latest.root, root, proof)
        except ProofError as exc:
            raise self._corrupt(
                f"tree of size {size} is not consistent with checkpoint {latest.size}: {exc}"
            ) from exc

    def _corrupt(self, message: str) -> LogCorruption:
        self.last_error = message
        log.critical("transparency log corruption: %s", message)
        return LogCorruption(message)

    async def checkpoint_for(self, index: int | None = None, size: int | None = None) -> StoredCheckpoint:
        """The checkpoint a proof binds to: of ``size`` if given, else the latest, published now if
        it does not cover ``index`` yet. NotFound if there is no such checkpoint or leaf.

        "Latest" may be up to ``LATEST_CACHE_S`` old (it is still a signed checkpoint of this log);
        a leaf it does not cover always looks again.
        """
        if size is not None:
            async with self.db.connect() as conn:
                found = await self.checkpoint_of_size(conn, size)
            if found is None:
                raise NotFound(f"no checkpoint of size {size}")
            return found
        cached = self._latest_cached()
        if cached is not None and (index is None or index < cached.size):
            return cached
        async with self.db.connect() as conn:
            latest = await self.latest_checkpoint(conn)
        if latest is not None:
            self._remember(latest)
            if index is None or index < latest.size:
                return latest
        published = await self.publish_checkpoint(force=True)
        if published is None or (index is not None and index >= published.size):
            raise NotFound(f"leaf {index} is not in the log")
        return published

    def _latest_cached(self) -> StoredCheckpoint | None:
        if self._latest is None or time.monotonic() - self._latest[1] > LATEST_CACHE_S:
            return None
        return self._latest[0]

    def _remember(self, checkpoint: StoredCheckpoint) -> None:
        if self._latest is None or checkpoint.size >= self._latest[0].size:
            self._latest = (checkpoint, time.monotonic())
        self._known_checkpoint_size = max(self._known_checkpoint_size, checkpoint.size)

    async def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """The inclusion proof of leaf ``index`` bound to a signed checkpoint (latest by default)."""
        checkpoint = await self.checkpoint_for(index, size)
        if index >= checkpoint.size:
            raise NotFound(f"leaf {index} is not in the tree of size {checkpoint.size}")
        ranges = inclusion_path(index, checkpoint.size)
        async with self.db.connect() as conn:
            stored = await self._read_nodes(conn, [(0, index), *nodes_for(ranges)])
        proof = [fold_subtrees([stored[n] for n in perfect_subtrees(b, e)]) for b, e in ranges]
        return InclusionProof(index, checkpoint.size, stored[(0, index)], proof, checkpoint)

    # --- background publication --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background publisher (idempotent; needs a running event loop)."""
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(
                self._publish_forever(), name="tlog-publisher"
            )

    async def _publish_forever(self) -> None:
        period = max(self.interval_s, 0.05)
        while True:
            try:
                async with asyncio.timeout(period):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.publish_checkpoint(force=False)
                self.last_error = None
            except LogCorruption:
                await asyncio.sleep(period * 10)  # logged as critical; keep serving reads, sign nothing
            except Exception as exc:  # database down, …: try again next period
                self.last_error = f"checkpoint publication failed: {type(exc).__name__}: {exc}"
                log.warning(self.last_error)

    async def aclose(self) -> None:
        task, self._publisher = self._publisher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- health ----------------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Size, latest checkpoint and its re-verification against the stored tree."""
        facts: dict[str, Any] = {"origin": self.origin, "vkey": self.verifier.vkey}
        try:
            async with asyncio.timeout(2.0), self.db.connect() as conn:
                size = await self.size(conn)
                latest = await self.latest_checkpoint(conn)
                facts["size"] = size
                if latest is not None:
                    facts["checkpoint_size"] = latest.size
                    facts["checkpoint_age_s"] = round(self.clock() - latest.created_at, 3)
                    if latest.size and await self.root(conn, latest.size) != latest.root:
                        raise LogCorruption(
                            f"the stored tree no longer has the root of checkpoint {latest.size}"
                        )
        except LogCorruption as exc:
            return {"status": "down", "error": str(exc), **facts}
        except Exception as exc:
            return {"status": "down", "error": f"{type(exc).__name__}: {exc}", **facts}
        if self.last_error:
            return {"status": "degraded", "error": self.last_error, **facts}
        return {"status": "up", **facts}


def _leaf(row: Any) -> Leaf:
    return Leaf(
        int(row.idx),
        bytes(row.leaf_hash),
        bytes(row.entry),
        str(row.kind),
        str(row.ref),
        float(row.created_at),
    )


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row.size), bytes(row.root), str(row.note), float(row.created_at))


# --- SQL ---------------------------------------------------------------------------------------------------
# The hot paths (append, proofs) talk to the driver directly: one statement per batch on PostgreSQL
# (arrays and unnest), executemany on SQLite, and one indexed lookup for every hash a proof needs.


def node_id(level: int, index: int) -> int:
    """The flat in-order number of perfect subtree ``(level, index)`` (``tlog_nodes.id``)."""
    return (index << (level + 1)) + (1 << level) - 1


LeafRow = tuple[int, bytes, bytes, str, str, float]


class _Sql:
    last_index = "SELECT idx FROM tlog_leaves ORDER BY idx DESC LIMIT 1"
    size_and_refs = ""
    """Rows ``(ref, idx, leaf_hash)``: the last leaf with a NULL ref, then the leaves logged under the refs."""

    async def select_many(self, conn: AsyncConnection, statement: str, values: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    async def read_hashes(self, conn: AsyncConnection, leaf_ids: list[int], node_ids: list[int]) -> list[Any]:
        raise NotImplementedError

    async def insert(
        self, conn: AsyncConnection, leaves: list[LeafRow], nodes: list[tuple[int, bytes]]
    ) -> None:
        raise NotImplementedError


class _PostgresSql(_Sql):
    size_and_refs = (
        "SELECT NULL AS ref, idx, leaf_hash FROM (SELECT idx, leaf_hash FROM tlog_leaves ORDER BY idx DESC LIMIT 1)"
        " AS last UNION ALL SELECT ref, idx, leaf_hash FROM tlog_leaves WHERE ref = ANY($1::varchar[])"
    )

    async def select_many(self, conn: AsyncConnection, statement: str, values: Sequence[Any]) -> list[Any]:
        return list((await conn.exec_driver_sql(statement, (list(values),))).all())

    async def read_hashes(self, conn: AsyncConnection, leaf_ids: list[int], node_ids: list[int]) -> list[Any]:
        result = await conn.exec_driver_sql(
            "SELECT 0, idx, leaf_hash FROM tlog_leaves WHERE idx = ANY($1::bigint[]) "
            "UNION ALL SELECT 1, id, hash FROM tlog_nodes WHERE id = ANY($2::bigint[])",
            (leaf_ids, node_ids),
        )
        return list(result.all())

    async def insert(
        self, conn: AsyncConnection, leaves: list[LeafRow], nodes: list[tuple[int, bytes]]
    ) -> None:
        if not leaves:
            return
        leaf_columns = [list(column) for column in zip(*leaves, strict=True)]
        node_columns = [list(column) for column in zip(*nodes, strict=True)] if nodes else [[], []]
        await conn.exec_driver_sql(
            "WITH leaves AS (INSERT INTO tlog_leaves (idx, leaf_hash, entry, kind, ref, created_at) SELECT * FROM "
            "unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::varchar[], $5::varchar[], $6::float8[])) "
            "INSERT INTO tlog_nodes (id, hash) SELECT * FROM unnest($7::bigint[], $8::bytea[])",
            (*leaf_columns, *node_columns),
        )


class _SqliteSql(_Sql):
    # json_each turns one JSON array parameter into an IN list of any length.
    size_and_refs = (
        "SELECT NULL AS ref, idx, leaf_hash FROM (SELECT idx, leaf_hash FROM tlog_leaves ORDER BY idx DESC LIMIT 1)"
        " UNION ALL SELECT ref, idx, leaf_hash FROM tlog_leaves WHERE ref IN (SELECT value FROM json_each(?))"
    )

    async def select_many(self, conn: AsyncConnection, statement: str, values: Sequence[Any]) -> list[Any]:
        return list((await conn.exec_driver_sql(statement, (json.dumps(list(values)),))).all())

    async def read_hashes(self, conn: AsyncConnection, leaf_ids: list[int], node_ids: list[int]) -> list[Any]:
        result = await conn.exec_driver_sql(
            "SELECT 0, idx, leaf_hash FROM tlog_leaves WHERE idx IN (SELECT value FROM json_each(?)) "
            "UNION ALL SELECT 1, id, hash FROM tlog_nodes WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(leaf_ids), json.dumps(node_ids)),
        )
        return list(result.all())

    async def insert(
        self, conn: AsyncConnection, leaves: list[LeafRow], nodes: list[tuple[int, bytes]]
    ) -> None:
        if leaves:
            await conn.exec_driver_sql(
                "INSERT INTO tlog_leaves (idx, leaf_hash, entry, kind, ref, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                leaves,
            )
        if nodes:
            await conn.exec_driver_sql("INSERT INTO tlog_nodes (id, hash) VALUES (?, ?)", nodes)
