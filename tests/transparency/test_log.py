"""The persistent log on SQLite and PostgreSQL: appends, idempotency, proofs from stored hashes, checkpoints."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from beacon.store import Database
from beacon.store.tables import tlog_checkpoints, tlog_leaves, tlog_nodes
from beacon.transparency.checkpoint import open_checkpoint
from beacon.transparency.log import LeafInput, LogCorruption, NotFound, TransparencyLog, node_id
from beacon.transparency.merkle import InMemoryTree, leaf_hash, verify_consistency, verify_inclusion
from beacon.transparency.proof import TlogProof

from .conftest import ORIGIN


def entries(n: int, start: int = 0) -> list[LeafInput]:
    return [LeafInput("receipt", f"r-{i}", b'{"receipt":%d}' % i) for i in range(start, start + n)]


async def test_append_single_and_batched_matches_the_reference(db: Database, tlog: TransparencyLog) -> None:
    items = entries(300)
    async with db.begin() as conn:
        first = [await tlog.append(conn, kind=i.kind, ref=i.ref, entry=i.entry) for i in items[:45]]
    async with db.begin() as conn:
        rest = await tlog.append_many(conn, items[45:])
    assert first + rest == list(range(300))
    reference = InMemoryTree.from_entries(i.entry for i in items)
    async with db.connect() as conn:
        assert await tlog.size(conn) == 300
        for size in (1, 2, 3, 64, 127, 128, 129, 299, 300):
            assert await tlog.root(conn, size) == reference.root(size)
        for index in (0, 1, 63, 64, 150, 299):
            assert await tlog.inclusion_proof(conn, index, 300) == reference.inclusion_proof(index, 300)
            assert await tlog.inclusion_proof(
                conn, index, 299 if index < 299 else 300
            ) == reference.inclusion_proof(index, 299 if index < 299 else 300)
        for old in (1, 7, 64, 65, 200, 299):
            assert await tlog.consistency_proof(conn, old, 300) == reference.consistency_proof(old, 300)
        leaf = await tlog.leaf(conn, 7)
        assert leaf is not None and leaf.entry == items[7].entry and leaf.ref == "r-7"
        assert leaf.leaf_hash == leaf_hash(items[7].entry)


async def test_only_complete_subtrees_are_stored(db: Database, tlog: TransparencyLog) -> None:
    async with db.begin() as conn:
        await tlog.append_many(conn, entries(13))
    async with db.connect() as conn:
        ids = [r.id for r in await conn.execute(sa.select(tlog_nodes.c.id))]
    # 13 leaves: 6 pairs, 3 quads, 1 octet — and nothing for the incomplete right edge.
    expected = [(1, i) for i in range(6)] + [(2, i) for i in range(3)] + [(3, 0)]
    assert sorted(ids) == sorted(node_id(level, i) for level, i in expected)


async def test_same_ref_is_never_a_second_leaf(db: Database, tlog: TransparencyLog) -> None:
    async with db.begin() as conn:
        assert await tlog.append(conn, kind="receipt", ref="x", entry=b"1") == 0
        assert await tlog.append(conn, kind="receipt", ref="x", entry=b"1") == 0
        assert await tlog.append_many(
            conn, [LeafInput("receipt", "y", b"2"), LeafInput("receipt", "y", b"2")]
        ) == [
            1,
            1,
        ]
    async with db.begin() as conn:
        # A different entry under a logged ref keeps the first (and says so in the log).
        assert await tlog.append(conn, kind="receipt", ref="x", entry=b"other") == 0
    async with db.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(tlog_leaves)) == 2


async def test_append_rolls_back_with_the_callers_transaction(db: Database, tlog: TransparencyLog) -> None:
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await tlog.append_many(conn, entries(5))
            raise RuntimeError("the caller failed after appending")
    async with db.connect() as conn:
        assert await tlog.size(conn) == 0
    async with db.begin() as conn:
        assert await tlog.append_many(conn, entries(3)) == [0, 1, 2]


async def test_checkpoints_are_signed_consistent_and_bound_to_proofs(
    db: Database, tlog: TransparencyLog
) -> None:
    async with db.begin() as conn:
        await tlog.append_many(conn, entries(10))
    first = await tlog.publish_checkpoint()
    assert first is not None and first.size == 10
    signed = open_checkpoint(first.note, [tlog.verifier], ORIGIN)
    assert signed.size == 10 and signed.root == first.root
    # Nothing new: the same checkpoint, never a second signature for the same size.
    assert await tlog.publish_checkpoint() == first
    async with db.begin() as conn:
        await tlog.append_many(conn, entries(7, start=10))
    # A leaf newer than the latest checkpoint: a checkpoint is published on demand.
    proof = await tlog.prove(15)
    assert proof.size == 17 and proof.checkpoint.size == 17
    verify_inclusion(proof.leaf_hash, 15, 17, proof.proof, proof.checkpoint.root)
    TlogProof.parse(proof.tlog_proof()).verify(
        [tlog.verifier], entry=entries(1, start=15)[0].entry, origin=ORIGIN
    )
    # Proofs at an older checkpoint's size stay available and bound to it.
    old = await tlog.prove(3, size=10)
    assert old.checkpoint == first
    verify_inclusion(old.leaf_hash, 3, 10, old.proof, first.root)
    async with db.connect() as conn:
        verify_consistency(
            10, 17, first.root, proof.checkpoint.root, await tlog.consistency_proof(conn, 10, 17)
        )
    with pytest.raises(NotFound):
        await tlog.prove(17)
    with pytest.raises(NotFound):
        await tlog.prove(0, size=12)


async def test_publication_is_due_by_interval_or_leaf_count(db: Database, log_key: object) -> None:
    from beacon.transparency.note import Signer

    clock = [1000.0]
    log = TransparencyLog(db, Signer(ORIGIN, log_key), interval_s=5.0, max_leaves=4, clock=lambda: clock[0])  # type: ignore[arg-type]
    async with db.begin() as conn:
        await log.append_many(conn, entries(1))
    assert (await log.publish_checkpoint(force=False)).size == 1  # type: ignore[union-attr]
    async with db.begin() as conn:
        await log.append_many(conn, entries(2, start=1))
    assert (await log.publish_checkpoint(force=False)).size == 1  # type: ignore[union-attr]  # not due yet
    clock[0] += 5.0
    assert (await log.publish_checkpoint(force=False)).size == 3  # type: ignore[union-attr]  # interval
    async with db.begin() as conn:
        await log.append_many(conn, entries(4, start=3))
    assert (await log.publish_checkpoint(force=False)).size == 7  # type: ignore[union-attr]  # leaf count


async def test_background_publisher_signs_pending_leaves(db: Database, log_key: object) -> None:
    from beacon.transparency.note import Signer

    log = TransparencyLog(db, Signer(ORIGIN, log_key), interval_s=0.05, max_leaves=1000)  # type: ignore[arg-type]
    log.start()
    try:
        async with db.begin() as conn:
            await log.append_many(conn, entries(5))
        for _ in range(100):
            async with db.connect() as conn:
                latest = await log.latest_checkpoint(conn)
            if latest is not None and latest.size == 5:
                break
            await asyncio.sleep(0.05)
        assert latest is not None and latest.size == 5
        assert (await log.health())["status"] == "up"
    finally:
        await log.aclose()


async def test_a_tampered_tree_is_never_signed_again(db: Database, tlog: TransparencyLog) -> None:
    async with db.begin() as conn:
        await tlog.append_many(conn, entries(8))
    await tlog.publish_checkpoint()
    async with db.begin() as conn:
        await tlog.append_many(conn, entries(3, start=8))
        # Rewrite history: the stored hash of leaves 0..7 (the signed tree) changes.
        await conn.execute(
            sa.update(tlog_nodes).where(tlog_nodes.c.id == node_id(3, 0)).values(hash=b"\x00" * 32)
        )
    with pytest.raises(LogCorruption, match="not consistent"):
        await tlog.publish_checkpoint()
    async with db.connect() as conn:
        assert [r.size for r in await conn.execute(sa.select(tlog_checkpoints.c.size))] == [8]
    health = await tlog.health()
    assert health["status"] == "down" and "checkpoint 8" in health["error"]


async def test_missing_subtree_hash_is_corruption_not_a_wrong_proof(
    db: Database, tlog: TransparencyLog
) -> None:
    async with db.begin() as conn:
        await tlog.append_many(conn, entries(4))
        await conn.execute(sa.delete(tlog_nodes).where(tlog_nodes.c.id == node_id(1, 1)))
    async with db.connect() as conn:
        with pytest.raises(LogCorruption, match="missing"):
            await tlog.inclusion_proof(conn, 0, 4)


async def test_empty_log_checkpoint_is_the_empty_tree(db: Database, tlog: TransparencyLog) -> None:
    checkpoint = await tlog.publish_checkpoint()
    assert checkpoint is not None and checkpoint.size == 0
    assert checkpoint.note.splitlines()[1:3] == ["0", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
    async with db.begin() as conn:
        await tlog.append_many(conn, entries(2))
    assert (await tlog.publish_checkpoint()).size == 2  # type: ignore[union-attr]  # extends the empty tree


@pytest.mark.parametrize(
    "bad", [LeafInput("receipt", "", b"x"), LeafInput("", "r", b"x"), LeafInput("r", "x" * 129, b"")]
)
async def test_invalid_inputs_are_refused_before_anything_is_written(
    db: Database, tlog: TransparencyLog, bad: LeafInput
) -> None:
    async with db.begin() as conn:
        with pytest.raises(ValueError):
            await tlog.append_many(conn, [LeafInput("receipt", "ok", b"1"), bad])
        assert await tlog.size(conn) == 0


def test_node_ids_are_unique_across_levels() -> None:
    seen = {node_id(level, i) for level in range(12) for i in range(1 << (12 - level))}
    assert len(seen) == sum(1 << (12 - level) for level in range(12))
    assert [node_id(1, i) for i in range(3)] == [1, 5, 9] and node_id(3, 0) == 7
