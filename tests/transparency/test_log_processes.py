"""Real processes: a writer killed with SIGKILL mid-append, and two writers appending at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from beacon.store import Database
from beacon.store.tables import tlog_checkpoints, tlog_leaves
from beacon.transparency.checkpoint import open_checkpoint
from beacon.transparency.log import LeafInput, TransparencyLog
from beacon.transparency.merkle import InMemoryTree, verify_consistency

from .appender_process import ORIGIN

ROOT = Path(__file__).resolve().parents[2]


def spawn(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.transparency.appender_process", url, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def audit(db: Database, tlog: TransparencyLog) -> tuple[int, list[tuple[int, bytes, str]]]:
    """Check the whole log against a rebuild from its leaves; return its size and checkpoints."""
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(tlog_leaves.c.idx, tlog_leaves.c.entry, tlog_leaves.c.ref).order_by(
                    tlog_leaves.c.idx
                )
            )
        ).all()
        checkpoints = [
            (int(r.size), bytes(r.root), str(r.note))
            for r in await conn.execute(sa.select(tlog_checkpoints).order_by(tlog_checkpoints.c.size))
        ]
        size = await tlog.size(conn)
        stored_roots = {cp[0]: await tlog.root(conn, cp[0]) for cp in checkpoints}
    assert [r.idx for r in rows] == list(range(len(rows))), "gaps in the leaf indices"
    assert len({r.ref for r in rows}) == len(rows), "a ref was logged twice"
    reference = InMemoryTree.from_entries(bytes(r.entry) for r in rows)
    previous: tuple[int, bytes] | None = None
    for cp_size, root, note in checkpoints:
        signed = open_checkpoint(note, [tlog.verifier], ORIGIN)
        assert (signed.size, signed.root) == (cp_size, root)
        assert reference.root(cp_size) == root == stored_roots[cp_size]
        if previous is not None and previous[0] > 0:
            verify_consistency(
                previous[0], cp_size, previous[1], root, reference.consistency_proof(previous[0], cp_size)
            )
        previous = (cp_size, root)
    return size, checkpoints


@pytest.mark.slow
async def test_killed_writer_leaves_a_log_consistent_with_every_checkpoint(
    database_url: str, db: Database, tlog: TransparencyLog
) -> None:
    process = spawn(database_url, "--count", "100000", "--batch", "7", "--publish-every", "3")
    published: list[int] = []
    assert process.stdout is not None
    try:
        while len(published) < 6:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
            assert line, f"writer ended early: {process.stderr.read() if process.stderr else ''}"
            if line.startswith("checkpoint "):
                published.append(int(line.split()[1]))
        await asyncio.sleep(0.05)  # land the kill in the middle of later appends
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    size, checkpoints = await audit(db, tlog)
    sizes = [cp[0] for cp in checkpoints]
    assert set(published) <= set(sizes), "a checkpoint the writer reported is gone"
    assert size >= max(published)
    # After the "restart" (a new writer here) the log goes on and stays consistent with all of them.
    async with db.begin() as conn:
        await tlog.append_many(conn, [LeafInput("receipt", f"after-{i}", b"%d" % i) for i in range(5)])
    assert (await tlog.publish_checkpoint()).size == size + 5  # type: ignore[union-attr]
    await audit(db, tlog)


@pytest.mark.slow
async def test_two_writers_make_one_linear_log(
    database_url: str, db: Database, tlog: TransparencyLog
) -> None:
    common = ["--count", "150", "--shared", "40", "--publish-every", "10"]
    writers = [
        spawn(database_url, "--prefix", "a", "--batch", "1", *common),
        spawn(database_url, "--prefix", "b", "--batch", "3", *common),
    ]
    for writer in writers:
        _out, err = await asyncio.to_thread(writer.communicate, timeout=240)
        assert writer.returncode == 0, err
    size, checkpoints = await audit(db, tlog)
    assert size == 150 + 150 + 40  # the 40 shared refs were appended by both and logged once
    assert checkpoints, "the writers published checkpoints"
