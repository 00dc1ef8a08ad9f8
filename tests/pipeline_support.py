"""Helpers shared by the pipeline tests (tests/queue, tests/worker, tests/faults) and bench/pipeline.py.

Jobs are submitted through the real intake (signed, verified, planned, one transaction); workers
are real ``beacon worker`` processes; the checks read the database like an auditor would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.boot import open_runtime
from beacon.canonical import jcs
from beacon.intake import Intake, sign_jobspec, stamp
from beacon.keys import Ed25519Key
from beacon.receipts import receipt_id
from beacon.runtime import Runtime
from beacon.store import Database
from beacon.store.tables import executions, job_events, jobs, tlog_leaves
from beacon.verify import verify_receipt
from beacon.worker.service import Pipeline

TERMINAL_JOBS = {"completed", "failed", "cancelled", "timed_out"}
TERMINAL_EXECUTIONS = TERMINAL_JOBS


@dataclass
class Submitter:
    """Signs JobSpecs with one key and submits them through the real intake."""

    key: Ed25519Key = field(default_factory=Ed25519Key.generate)

    @property
    def trusted_keys(self) -> str:
        return json.dumps([{"kid": "test", "public_key": self.key.public_key_b64}])

    def document(
        self,
        job_id: str,
        *,
        benchmark: str = "noop",
        regions: Iterable[str] = ("US",),
        models: Iterable[str] | None = None,
        questions: Iterable[str] | None = None,
        constraints: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": job_id,
            "version": "1",
            "benchmark": {"name": benchmark},
            "constraints": {"regions": list(regions), "min_success_rate": 0.0, **(constraints or {})},
        }
        if models is not None:
            document["models"] = list(models)
        if questions is not None:
            document["questions"] = list(questions)
        if options is not None:
            document["options"] = dict(options)
        return document

    def body(self, job_id: str, **kwargs: Any) -> bytes:
        return json.dumps(sign_jobspec(stamp(self.document(job_id, **kwargs)), self.key)).encode()

    async def submit(self, runtime: Runtime, job_id: str, **kwargs: Any) -> str:
        await Intake(runtime).submit(self.body(job_id, **kwargs))
        return job_id

    async def submit_question(self, runtime: Runtime, job_id: str, options: Mapping[str, Any]) -> str:
        """A bias-detection job asking ``math_basic`` of smollm2-135m in EU: a model call per variant."""
        return await self.submit(
            runtime,
            job_id,
            benchmark="bias-detection",
            regions=["EU"],
            models=["smollm2-135m"],
            questions=["math_basic"],
            options=options,
        )


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    interval_s: float = 0.05,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def job_statuses(db: Database, job_ids: Iterable[str] | None = None) -> dict[str, str]:
    query = sa.select(jobs.c.id, jobs.c.status)
    if job_ids is not None:
        query = query.where(jobs.c.id.in_(list(job_ids)))
    async with db.connect() as conn:
        return {row.id: row.status for row in await conn.execute(query)}


async def wait_for_jobs(db: Database, job_ids: Iterable[str], *, timeout_s: float = 60.0) -> dict[str, str]:
    ids = list(job_ids)
    statuses: dict[str, str] = {}

    async def done() -> bool:
        nonlocal statuses
        statuses = await job_statuses(db, ids)
        return len(statuses) == len(ids) and all(s in TERMINAL_JOBS for s in statuses.values())

    try:
        await wait_until(done, timeout_s=timeout_s, interval_s=0.1, what=f"{len(ids)} jobs to end")
    except AssertionError as exc:
        waiting = {k: v for k, v in statuses.items() if v not in TERMINAL_JOBS}
        raise AssertionError(f"{exc}; not terminal: {dict(list(waiting.items())[:10])}") from None
    return statuses


async def audit_pipeline(db: Database, public_keys: Iterable[str]) -> list[str]:
    """Everything an auditor checks after a run; returns the violations (empty: all good).

    Every job terminal with a terminal timeline event; every execution terminal with exactly one
    receipt that verifies under one of ``public_keys`` and matches the row (status, attempt, id);
    when the log is on, exactly one leaf per receipt whose bytes are the receipt's JCS.
    """
    problems: list[str] = []
    keys = list(public_keys)
    async with db.connect() as conn:
        job_rows = (await conn.execute(sa.select(jobs.c.id, jobs.c.status))).all()
        events = {
            (row.job_id, row.status): row.n
            for row in await conn.execute(
                sa.select(job_events.c.job_id, job_events.c.status, sa.func.count().label("n")).group_by(
                    job_events.c.job_id, job_events.c.status
                )
            )
        }
        rows = (await conn.execute(sa.select(executions))).all()
        leaves: dict[str, tuple[int, bytes]] = {}
        for leaf in await conn.execute(
            sa.select(tlog_leaves.c.ref, tlog_leaves.c.entry).where(tlog_leaves.c.kind == "receipt")
        ):
            count, _ = leaves.get(leaf.ref, (0, b""))
            leaves[leaf.ref] = (count + 1, bytes(leaf.entry))
    for job in job_rows:
        if job.status not in TERMINAL_JOBS:
            problems.append(f"job {job.id} is {job.status}")
        elif events.get((job.id, job.status)) != 1:
            problems.append(f"job {job.id}: {events.get((job.id, job.status))} '{job.status}' events")
    for row in rows:
        if row.status not in TERMINAL_EXECUTIONS:
            problems.append(f"execution {row.id} is {row.status}")
            continue
        receipt = row.receipt
        if receipt is None:
            problems.append(f"execution {row.id} has no receipt")
            continue
        if not any(_verifies(receipt, key) for key in keys):
            problems.append(f"receipt of {row.id} does not verify")
        if receipt["status"] != row.status or receipt["attempt"] != row.attempt:
            problems.append(
                f"receipt of {row.id} says {receipt['status']}@{receipt['attempt']}, row {row.status}@{row.attempt}"
            )
        if (
            row.receipt_id != receipt_id(row.id, receipt["attempt"])
            or receipt["receipt_id"] != row.receipt_id
        ):
            problems.append(f"receipt id of {row.id} does not match")
        if leaves or row.leaf_index is not None:
            count, entry = leaves.get(row.receipt_id, (0, None))
            if count != 1:
                problems.append(f"receipt {row.receipt_id} has {count} log leaves")
            elif bytes(entry) != jcs(receipt):
                problems.append(f"log leaf of {row.receipt_id} is not the receipt's JCS bytes")
    receipts = {row.receipt_id for row in rows if row.receipt_id}
    extra = set(leaves) - receipts
    if extra:
        problems.append(f"{len(extra)} receipt leaves belong to no execution (e.g. {sorted(extra)[:3]})")
    return problems


def _verifies(receipt: dict[str, Any], key: str) -> bool:
    try:
        verify_receipt(receipt, key)
    except Exception:
        return False
    return True


# --- private servers ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on now (for a server of this test or benchmark)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class RedisServer:
    """A redis-server of a test or benchmark of its own (no persistence, like the shared one)."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("SKIPPED LOUDLY: redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 10)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# --- real worker processes ----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def child_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child ``beacon`` process: ours minus Beacon settings, plus ``settings``."""
    drop = (
        "BEACON_",
        "DATABASE_URL",
        "REDIS_URL",
        "TRUSTED_KEYS",
        "ADMIN_TOKENS",
        "OPERATOR_TOKENS",
        "VIEWER_TOKENS",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update({"PYTHONUNBUFFERED": "1", "BEACON_ENV_FILE": "/nonexistent/beacon.env", **settings})
    return env


@dataclass
class BeaconProcess:
    """A ``beacon`` subcommand run as a child process, stopped by PID."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> BeaconProcess:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from beacon.cli import main; main()", *self.args],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(10)

    def terminate(self, timeout_s: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_line(self, prefix: str, timeout_s: float = 30.0) -> str:
        """The first line of its output that starts with ``prefix``, once printed (it must not exit first)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if line.startswith(prefix):
                    return line
            if not self.alive:
                raise AssertionError(f"{self.log_path.name} exited:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"no {prefix!r} from {self.log_path.name}:\n{self.log()[-3000:]}")


def worker_process(
    region: str, env: dict[str, str], log_dir: Path, *, concurrency: int = 1, name: str = ""
) -> BeaconProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"worker-{region.lower()}{name}-{time.monotonic_ns()}.log"
    return BeaconProcess(["worker", "--region", region, "--concurrency", str(concurrency)], env, path)


FAST = {
    "BEACON_HEARTBEAT_SECONDS": "0.2",
    "BEACON_WORKER_LEASE_SECONDS": "1.0",
    "BEACON_RETRY_BASE_SECONDS": "0.05",
    "BEACON_RETRY_MAX_SECONDS": "0.3",
    "BEACON_SWEEP_SECONDS": "0.5",
    "BEACON_WARM_UP": "false",
}
"""Clocks for the fault tests: a lost worker's messages move on after a second."""


@dataclass
class Cluster:
    """The test's runner: API-side services in this process, workers as child processes."""

    runtime: Runtime
    pipeline: Pipeline
    submitter: Submitter
    env: dict[str, str]
    log_dir: Path
    workers: list[BeaconProcess] = field(default_factory=list)

    def start_worker(
        self, region: str = "US", *, concurrency: int = 1, failpoints: str = ""
    ) -> BeaconProcess:
        env = {**self.env, "BEACON_FAILPOINTS": failpoints} if failpoints else self.env
        process = worker_process(region, env, self.log_dir, concurrency=concurrency).start()
        self.workers.append(process)
        return process

    def start_server(self, *, failpoints: str = "", extra: list[str] | None = None) -> BeaconProcess:
        """``beacon serve --port 0`` (API, relay, sweeper) as a child process."""
        env = {**self.env, "BEACON_FAILPOINTS": failpoints} if failpoints else self.env
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"serve-{time.monotonic_ns()}.log"
        process = BeaconProcess(["serve", "--port", "0", *(extra or [])], env, path).start()
        self.workers.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in self.workers)


@pytest.fixture
async def make_cluster(
    make_settings: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Build a Cluster on a database and a Redis; stop its workers and services afterwards."""
    made: list[Cluster] = []
    runtimes = contextlib.AsyncExitStack()

    async def build(
        database_url: str,
        redis_url: str,
        prefix: str,
        *,
        relay: bool = True,
        sweeper: bool = True,
        **extra: Any,
    ) -> Cluster:
        submitter = Submitter()
        settings_env = {
            **FAST,
            "DATABASE_URL": database_url.replace("postgresql+asyncpg://", "postgresql://"),
            "REDIS_URL": redis_url,
            "BEACON_REDIS_PREFIX": prefix,
            "BEACON_DATA_DIR": str(tmp_path / "worker-data"),
            "BEACON_RUNNER_KEY_FILE": str(tmp_path / "runner-key.json"),
            "TRUSTED_KEYS": submitter.trusted_keys,
            "LOG_LEVEL": "INFO",
        }
        settings = make_settings(
            database_url=database_url,
            redis_url=redis_url,
            redis_prefix=prefix,
            trusted_keys=submitter.trusted_keys,
            runner_key_file=tmp_path / "runner-key.json",
            heartbeat_interval_s=0.2,
            worker_lease_s=1.0,
            retry_base_s=0.05,
            retry_max_s=0.3,
            sweep_interval_s=0.5,
            **extra,
        )
        runtime = await runtimes.enter_async_context(open_runtime(settings))
        pipeline = Pipeline(runtime, relay=relay, sweeper=sweeper)
        await pipeline.start()
        cluster = Cluster(runtime, pipeline, submitter, child_environment(settings_env), tmp_path / "logs")
        made.append(cluster)
        return cluster

    yield build
    for cluster in made:
        for process in cluster.workers:
            process.kill()
        await asyncio.wait_for(cluster.pipeline.stop(timeout_s=5), 30)
    await asyncio.wait_for(runtimes.aclose(), 30)


def server_url(process: BeaconProcess, timeout_s: float = 30.0) -> str:
    """The URL a ``beacon serve`` child printed once it listens."""
    return process.wait_for_line("Beacon listening on ", timeout_s).split()[3]
