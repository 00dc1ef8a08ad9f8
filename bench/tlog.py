"""Transparency-log benchmark: appends/s (batched and single) and inclusion-proof latency, on SQLite
and PostgreSQL, against the PyPI ``pymerkle`` library (SqliteTree, its persistent tree) on the same
entries, in the same run.

    .venv/bin/python bench/tlog.py                    # 10^6 leaves (a few minutes)
    .venv/bin/python bench/tlog.py --leaves 20000     # quick run

Goals (issue 4): ≥ 20,000 appends/s batched, proof < 2 ms at 10^6 leaves, ≥ 10× pymerkle.
What is compared: our batched append is ``TransparencyLog.append_many`` in transactions of
``--batch`` leaves (sequencer lock, ref dedupe, leaf rows and every completed subtree hash written);
pymerkle's is ``SqliteTree.append_entries`` (leaf hashes only; its interior hashes are computed
when a proof asks for them). Single appends are one leaf per committed transaction for both. A
proof is what ``GET /api/v1/transparency/proof`` does (checkpoint lookup + one read of the needed
hashes), against ``SqliteTree.prove_inclusion`` at the same index and size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from beacon.keys import Ed25519Key
from beacon.store import Database
from beacon.transparency.log import LeafInput, TransparencyLog
from beacon.transparency.merkle import verify_inclusion
from beacon.transparency.note import Signer

console = Console(width=130)


def entry(i: int) -> bytes:
    """A receipt-sized entry (~200 bytes), distinct per index."""
    return (
        b'{"receipt_id":"rc_%029d","job_id":"bench","output":{"sha256":"%064x"},"status":"completed","region":"EU"}'
        % (
            i,
            i,
        )
    )


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_beacon(
    url: str, leaves: int, batch: int, singles: int, proofs: int, label: str
) -> dict[str, float]:
    db = Database(url)
    await db.migrate()
    log = TransparencyLog(
        db, Signer("bench.beacon/tlog", Ed25519Key.generate()), interval_s=3600, max_leaves=10**12
    )
    with progress() as bar:
        task = bar.add_task(f"{label}: batched appends", total=leaves)
        started = time.perf_counter()
        for start in range(0, leaves, batch):
            items = [
                LeafInput("receipt", f"rc-{i}", entry(i)) for i in range(start, min(leaves, start + batch))
            ]
            async with db.begin() as conn:
                await log.append_many(conn, items)
            bar.advance(task, len(items))
        batched = leaves / (time.perf_counter() - started)
        task = bar.add_task(f"{label}: single appends", total=singles)
        started = time.perf_counter()
        for i in range(leaves, leaves + singles):
            async with db.begin() as conn:
                await log.append(conn, kind="receipt", ref=f"rc-{i}", entry=entry(i))
            bar.advance(task)
        single = singles / (time.perf_counter() - started)
    size = leaves + singles
    checkpoint = await log.publish_checkpoint()
    assert checkpoint is not None and checkpoint.size == size
    rng = random.Random(1)
    indices = [rng.randrange(size) for _ in range(proofs)]
    started = time.perf_counter()
    await log.prove(size // 3)
    first = (time.perf_counter() - started) * 1000
    latencies = []
    for index in indices:
        started = time.perf_counter()
        proof = await log.prove(index)
        latencies.append((time.perf_counter() - started) * 1000)
        verify_inclusion(proof.leaf_hash, index, size, proof.proof, checkpoint.root)
    await db.close()
    return {
        "first_proof_ms": first,
        "batched": batched,
        "single": single,
        "proof_p50_ms": statistics.median(latencies),
        "proof_p99_ms": percentile(latencies, 0.99),
    }


def bench_pymerkle(path: Path, leaves: int, singles: int, proofs: int) -> dict[str, float]:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(path))
    with progress() as bar:
        task = bar.add_task("pymerkle: batched appends", total=leaves)
        started = time.perf_counter()
        chunk = 100_000
        for start in range(0, leaves, chunk):
            tree.append_entries([entry(i) for i in range(start, min(leaves, start + chunk))])
            bar.advance(task, min(chunk, leaves - start))
        batched = leaves / (time.perf_counter() - started)
        task = bar.add_task("pymerkle: single appends", total=singles)
        started = time.perf_counter()
        for i in range(leaves, leaves + singles):
            tree.append_entry(entry(i))
            bar.advance(task)
        single = singles / (time.perf_counter() - started)
    size = leaves + singles
    rng = random.Random(1)
    indices = [rng.randrange(size) for _ in range(proofs)]
    started = time.perf_counter()
    tree.prove_inclusion(size // 3 + 1, size)
    first = (time.perf_counter() - started) * 1000
    latencies = []
    with progress() as bar:
        task = bar.add_task("pymerkle: proofs", total=proofs)
        for index in indices:
            started = time.perf_counter()
            tree.prove_inclusion(index + 1, size)  # pymerkle indexes leaves from 1
            latencies.append((time.perf_counter() - started) * 1000)
            bar.advance(task)
    tree.close()
    return {
        "first_proof_ms": first,
        "batched": batched,
        "single": single,
        "proof_p50_ms": statistics.median(latencies),
        "proof_p99_ms": percentile(latencies, 0.99),
    }


async def postgres_database(admin_url: str) -> tuple[str, Callable[[], Any]]:
    import asyncpg

    name = f"beacon_bench_{uuid.uuid4().hex[:10]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--leaves", type=int, default=1_000_000, help="leaves appended in batches (default 10^6)"
    )
    parser.add_argument(
        "--batch", type=int, default=10_000, help="leaves per transaction for batched appends"
    )
    parser.add_argument(
        "--singles", type=int, default=2_000, help="single-leaf transactions after the batches"
    )
    parser.add_argument("--proofs", type=int, default=1_000, help="inclusion proofs at random indices")
    parser.add_argument("--stores", default="sqlite,postgres", help="which stores: sqlite,postgres")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BEACON_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL; a scratch database is created and dropped",
    )
    parser.add_argument("--no-pymerkle", action="store_true", help="skip the pymerkle peer")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as tmp:
        stores = [s.strip() for s in args.stores.split(",") if s.strip()]
        if "sqlite" in stores:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'beacon.db'}"
            results["beacon/sqlite"] = asyncio.run(
                bench_beacon(url, args.leaves, args.batch, args.singles, args.proofs, "beacon/sqlite")
            )
        if "postgres" in stores:

            async def run_pg() -> dict[str, float]:
                url, drop = await postgres_database(args.postgres)
                try:
                    return await bench_beacon(
                        url, args.leaves, args.batch, args.singles, args.proofs, "beacon/postgres"
                    )
                finally:
                    await drop()

            results["beacon/postgres"] = asyncio.run(run_pg())
        if not args.no_pymerkle:
            results["pymerkle/sqlite"] = bench_pymerkle(
                Path(tmp) / "pymerkle.db", args.leaves, args.singles, args.proofs
            )

    table = Table(title=f"transparency log, {args.leaves + args.singles:,} leaves (batch {args.batch:,})")
    for column in (
        "store",
        "batched appends/s",
        "single appends/s",
        "first proof ms",
        "proof p50 ms",
        "proof p99 ms",
    ):
        table.add_column(column, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['batched']:,.0f}",
            f"{r['single']:,.0f}",
            f"{r['first_proof_ms']:.1f}",
            f"{r['proof_p50_ms']:.3f}",
            f"{r['proof_p99_ms']:.3f}",
        )
    console.print(table)
    peer = results.get("pymerkle/sqlite")
    for name, r in results.items():
        if name.startswith("pymerkle"):
            continue
        verdicts = [
            f"batched {r['batched']:,.0f}/s (goal ≥ 20,000: {'met' if r['batched'] >= 20_000 else 'MISSED'})",
            f"proof p50 {r['proof_p50_ms']:.3f} ms (goal < 2 ms: {'met' if r['proof_p50_ms'] < 2 else 'MISSED'})",
        ]
        if peer:
            verdicts.append(
                f"vs pymerkle: batched ×{r['batched'] / peer['batched']:.2f}, single ×{r['single'] / peer['single']:.2f}, "
                f"proof p50 ×{peer['proof_p50_ms'] / r['proof_p50_ms']:.2f}, p99 ×{peer['proof_p99_ms'] / r['proof_p99_ms']:.2f}, "
                f"first proof ×{peer['first_proof_ms'] / r['first_proof_ms']:.1f} (ratios > 1: beacon better)"
            )
        console.print(f"[bold]{name}[/]: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
