"""Intake benchmark: accepted signed-JobSpec submissions/s and latency against a real server on PostgreSQL,
with a trivial endpoint of the same server (``GET /health/live``) measured in the same run as the peer.

    .venv/bin/python bench/intake.py                      # 64 clients, 10 s per phase, uvicorn --workers 2
    .venv/bin/python bench/intake.py --server beacon      # through `beacon serve` (one process)
    .venv/bin/python bench/intake.py --idempotency-keys   # every submission carries an Idempotency-Key

What runs: a fresh PostgreSQL database on the local server and a private Redis key prefix (both
removed afterwards); the API in service mode (Redis rate limiter, no relay or workers, so only
intake is measured) with access logging on, as deployed. Every request is a distinct, freshly
signed ``noop`` JobSpec (signed before the clock starts: signing is the client's cost). Clients
are ``--clients`` keep-alive HTTP/1.1 connections from a small asyncio client (uvloop), so the
load generator stays cheap on this 2-core machine — it still shares the CPU with the server and
PostgreSQL, which the numbers include.

Goal (issue 2): ≥ 1,000 accepted submissions/s with p99 < 100 ms at 64 concurrent clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from beacon.intake import sign_jobspec, stamp
from beacon.keys import Ed25519Key

console = Console(width=120)
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


# --- a tiny HTTP/1.1 keep-alive client ----------------------------------------------------------------


class Connection:
    """One keep-alive connection; just enough HTTP/1.1 for a benchmark (Content-Length bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value.strip())
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.reconnect()
        return status, payload

    async def reconnect(self) -> None:
        if self.writer is not None:
            self.writer.close()
        await self.open()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def post_head(host: str, path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def get_head(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(202, 0) + self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_phase(
    name: str,
    url: str,
    clients: int,
    duration: float,
    warmup: float,
    make_request: object,
) -> Phase:
    """``clients`` connections send back to back for ``warmup + duration`` s; only the last ``duration`` counts."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    phase = Phase(name)
    connections = [Connection(host, port) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def client(index: int, connection: Connection) -> None:
        sequence = 0
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            head, body = make_request(index, sequence)  # type: ignore[operator]
            sequence += 1
            sent = time.perf_counter()
            status, _ = await connection.request(head, body)
            done = time.perf_counter()
            if sent >= measure_from and done <= stop_at:
                phase.latencies.append(done - sent)
                phase.statuses[status] = phase.statuses.get(status, 0) + 1

    await asyncio.gather(*(client(i, c) for i, c in enumerate(connections)))
    phase.elapsed = duration
    await asyncio.gather(*(c.close() for c in connections))
    return phase


# --- the system under test -----------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_server(kind: str, workers: int, env: dict[str, str], workdir: Path) -> Server:
    log = workdir / "server.log"
    with socket_port() as port:
        pass
    if kind == "beacon":
        command = [
            str(BIN / "beacon"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-relay",
            "--no-sweeper",
        ]
    else:
        command = [
            str(BIN / "uvicorn"),
            "beacon.api.app:app_from_environment",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return Server(url, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become ready:\n{log.read_text()[-3000:]}")


class socket_port:
    """A free TCP port on 127.0.0.1 (closed again before the server binds it)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


async def pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(database="postgres", **PG)  # type: ignore[arg-type]
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def count_jobs(database: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database=database, **PG)  # type: ignore[arg-type]
    try:
        jobs = await conn.fetchval("SELECT count(*) FROM jobs")
        outbox = await conn.fetchval("SELECT count(*) FROM outbox")
    finally:
        await conn.close()
    return int(jobs), int(outbox)


def sign_bodies(count: int, key: Ed25519Key, run: str) -> list[bytes]:
    bodies = []
    with Progress(
        TextColumn("signing JobSpecs"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("sign", total=count)
        for i in range(count):
            document = {
                "id": f"bench-{run}-{i}",
                "version": "1",
                "benchmark": "noop",
                "container": {"image": "noop"},
            }
            bodies.append(json.dumps(sign_jobspec(stamp(document), key), separators=(",", ":")).encode())
            if i % 1000 == 0:
                progress.update(task, completed=i)
        progress.update(task, completed=count)
    return bodies


def batch_stats(exposition: str) -> str:
    """Group-commit figures from the server's own metrics (all its processes)."""
    values: dict[str, float] = {}
    for line in exposition.splitlines():
        match = re.match(
            r"(beacon_intake_(?:batch_jobs|commit_seconds)_(?:sum|count))(?:\{[^}]*\})? (\S+)", line
        )
        if match:
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(2))
    count = values.get("beacon_intake_batch_jobs_count", 0.0)
    if not count:
        return "no intake transactions reported"
    jobs = values.get("beacon_intake_batch_jobs_sum", 0.0) / count
    commit_ms = (
        values.get("beacon_intake_commit_seconds_sum", 0.0)
        / values.get("beacon_intake_commit_seconds_count", 1.0)
        * 1000
    )
    return f"{count:,.0f} intake transactions, {jobs:.1f} jobs each on average, {commit_ms:.1f} ms to write and commit one"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each phase")
    parser.add_argument("--server", choices=["uvicorn", "beacon"], default="uvicorn")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--idempotency-keys", action="store_true", help="send an Idempotency-Key with every submission"
    )
    parser.add_argument("--max-rate", type=float, default=4000.0, help="bodies to pre-sign per second of run")
    args = parser.parse_args()

    import uvloop

    run = uuid.uuid4().hex[:8]
    database = f"beacon_bench_{run}"
    prefix = f"beacon-bench-{run}"
    key = Ed25519Key.generate()
    total = int(args.max_rate * (args.duration + args.warmup))
    bodies = sign_bodies(total, key, run)

    asyncio.run(pg_admin(f'CREATE DATABASE "{database}"'))
    workdir = Path(tempfile.mkdtemp(prefix="beacon-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{database}",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "BEACON_REDIS_PREFIX": prefix,
            "BEACON_DATA_DIR": str(workdir / "data"),
            "BEACON_ENV_FILE": str(workdir / "no.env"),
            "TRUSTED_KEYS": json.dumps([{"kid": "bench", "public_key": key.public_key_b64}]),
            "RATE_LIMIT_PER_MINUTE": "10000000",
            "SUBMIT_RATE_LIMIT_PER_MINUTE": "10000000",
            "GIN_MODE": "release",
            "LOG_LEVEL": "INFO",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        }
    )
    (workdir / "metrics").mkdir()
    # Migrate once before the workers start (they would race to create the schema).
    subprocess.run(
        [str(BIN / "beacon"), "db", "upgrade"], env=env, cwd=workdir, check=True, capture_output=True
    )
    server = start_server(args.server, args.workers, env, workdir)
    try:
        host = urlsplit(server.url).netloc
        cursor = iter(range(len(bodies)))

        def submission(index: int, sequence: int) -> tuple[bytes, bytes]:
            body = bodies[next(cursor)]
            extra = f"Idempotency-Key: {run}-{index}-{sequence}\r\n" if args.idempotency_keys else ""
            return post_head(host, "/api/v1/jobs", len(body), extra), body

        trivial_head = get_head(host, "/health/live")

        def trivial(index: int, sequence: int) -> tuple[bytes, bytes]:
            return trivial_head, b""

        uvloop.install()
        console.print(
            f"[bold]server[/]: {args.server} ({args.workers if args.server == 'uvicorn' else 1} process(es)), "
            f"PostgreSQL database {database}, Redis prefix {prefix}, {args.clients} clients"
        )
        live = asyncio.run(
            run_phase("GET /health/live", server.url, args.clients, args.duration, args.warmup, trivial)
        )
        submit = asyncio.run(
            run_phase("POST /api/v1/jobs", server.url, args.clients, args.duration, args.warmup, submission)
        )
        jobs, outbox = asyncio.run(count_jobs(database))
        batches = batch_stats(httpx.get(server.url + "/metrics", timeout=30).text)
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            client.delete(*stale)

    table = Table(title=f"Intake, {args.clients} concurrent clients, {args.duration:g} s measured per phase")
    for column in ("endpoint", "ok/s", "p50 ms", "p99 ms", "max ms", "statuses"):
        table.add_column(column, justify="right" if column not in ("endpoint", "statuses") else "left")
    for phase in (submit, live):
        table.add_row(
            phase.name,
            f"{phase.rate:,.0f}",
            f"{phase.percentile(0.50):.1f}",
            f"{phase.percentile(0.99):.1f}",
            f"{max(phase.latencies) * 1000 if phase.latencies else float('nan'):.1f}",
            json.dumps(dict(sorted(phase.statuses.items()))),
        )
    console.print(table)
    ratio = submit.rate / live.rate if live.rate else float("nan")
    console.print(f"accepted submissions/s: [bold]{submit.rate:,.0f}[/]  (goal ≥ 1,000)")
    console.print(
        f"p50 {submit.percentile(0.5):.1f} ms, p99 [bold]{submit.percentile(0.99):.1f} ms[/]  (goal p99 < 100 ms)"
    )
    console.print(f"ratio to GET /health/live on the same server: [bold]{ratio:.2f}[/]")
    console.print(f"rows written: {jobs} jobs, {outbox} outbox rows (each accepted job is durable)")
    console.print(f"group commit: {batches}")
    mean = statistics.fmean(submit.latencies) * 1000 if submit.latencies else float("nan")
    console.print(
        f"mean latency {mean:.1f} ms; non-202 answers: {sum(v for k, v in submit.statuses.items() if k != 202)}"
    )


if __name__ == "__main__":
    main()
