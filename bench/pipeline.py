"""Pipeline benchmark: executions/s end to end (submit → all signed receipts) with the ``noop``
benchmark and 2 worker processes, against a no-op task through ``arq`` on the same Redis, in the
same run.

    .venv/bin/python bench/pipeline.py                       # 200 jobs × 10 executions
    .venv/bin/python bench/pipeline.py --jobs 50 --models 4  # quick run

Goals (issue 3): ≥ 500 executions/s and ≥ 1.0× arq, while signing every receipt.

What is measured, for both, from the first submission to the last result, with the workers
already started and idle:

* Beacon: signed JobSpecs through the real intake (verify, plan, one transaction each, outbox) →
  the relay → Redis Streams → 2 ``beacon worker`` processes (claim transaction, ``noop``, signed
  receipt, transparency-log leaf, job decision, acknowledgement) on PostgreSQL. Done = every
  execution has its receipt and every job is terminal.
* arq: ``enqueue_job`` of a no-op coroutine for each execution → 2 arq worker processes
  (``max_jobs`` = the same concurrency). Done = every job has its result.

Both use one private ``redis-server`` started here on a free port; Beacon's database is a fresh
database on the PostgreSQL server of ``BEACON_TEST_PG_*`` (default 127.0.0.1:5432), dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())
REPO = Path(SCRIPT).parents[1]
sys.path.insert(0, str(REPO))

PG = f"{os.environ.get('BEACON_TEST_PG_USER', 'postgres')}@{os.environ.get('BEACON_TEST_PG_HOST', '127.0.0.1')}:{os.environ.get('BEACON_TEST_PG_PORT', '5432')}"
ARQ_QUEUE = "bench:arq:queue"
SUBMITTERS = 8
"""Submissions in flight at once (clients of the API), for both systems."""


async def noop(ctx: dict[str, Any]) -> None:
    """The arq task: does nothing, like the ``noop`` benchmark."""
    return None


async def pg_admin(statement: str) -> None:
    import asyncpg

    user, _, hostport = PG.partition("@")
    host, _, port = hostport.partition(":")
    conn = await asyncpg.connect(host=host, port=int(port), user=user, database="postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def spawn(arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A Python child process (a worker of either system), its stderr in ``log``."""
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, *arguments], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr
        )


async def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- Beacon ------------------------------------------------------------------------------------------
async def run_beacon(
    redis_url: str, jobs: int, models: int, concurrency: int, workdir: Path, *, finalizers: bool = True
) -> dict[str, Any]:
    import sqlalchemy as sa

    from beacon.boot import JOB_FINALIZERS, open_runtime
    from beacon.config import Settings
    from beacon.store.tables import executions
    from beacon.store.tables import jobs as jobs_table
    from beacon.worker.service import Pipeline
    from tests.pipeline_support import Submitter, child_environment

    name = f"beacon_bench_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    database_url = f"postgresql+asyncpg://{PG}/{name}"
    submitter = Submitter()
    key_file = workdir / "runner-key.json"
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix="bench",
        trusted_keys=submitter.trusted_keys,
        runner_key_file=key_file,
        data_dir=workdir / "api",
        submit_rate_limit_per_minute=0,
    )
    services = contextlib.AsyncExitStack()
    # without finalizers: the pipeline alone, no bundles or diff reports per job
    runtime = await services.enter_async_context(
        open_runtime(settings, job_finalizers=JOB_FINALIZERS if finalizers else ())
    )
    pipeline = Pipeline(runtime, sweeper=False)
    await pipeline.start()
    env = child_environment(
        {
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url.replace("+asyncpg", ""),
            "REDIS_URL": redis_url,
            "BEACON_REDIS_PREFIX": "bench",
            "BEACON_RUNNER_KEY_FILE": str(key_file),
            "BEACON_DATA_DIR": str(workdir / "worker"),
            "BEACON_WARM_UP": "false",  # noop jobs: no model to load
        }
    )
    command = ["-c", "from beacon.cli import main; main()", "worker", "--region", "US"]
    workers = [
        spawn([*command, "--concurrency", str(concurrency)], env, workdir / f"worker-{n}.log")
        for n in range(2)
    ]
    try:

        async def registered() -> bool:
            from beacon.store.tables import workers as workers_table

            async with runtime.db.connect() as conn:
                return bool(await conn.scalar(sa.select(sa.func.count()).select_from(workers_table)) == 2)

        await wait_for(registered, 60, "the 2 workers to start")
        await asyncio.sleep(1.0)
        total = jobs * models
        model_ids = [f"m{i}" for i in range(models)]
        bodies = [submitter.body(f"bench-{n:05d}", models=model_ids) for n in range(jobs)]
        from beacon.intake import Intake

        intake = Intake(runtime)
        slots = asyncio.Semaphore(SUBMITTERS)

        async def submit(body: bytes) -> None:
            async with slots:
                await intake.submit(body)

        started = time.perf_counter()
        await asyncio.gather(*(submit(body) for body in bodies))
        submitted = time.perf_counter() - started

        async def all_receipts() -> bool:
            async with runtime.db.connect() as conn:
                done = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(executions)
                    .where(executions.c.receipt_id.is_not(None))
                )
                open_jobs = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(jobs_table)
                    .where(jobs_table.c.status.not_in(["completed", "failed", "cancelled", "timed_out"]))
                )
            return bool(done == total and open_jobs == 0)

        await wait_for(all_receipts, 600, "all receipts")
        elapsed = time.perf_counter() - started
        async with runtime.db.connect() as conn:
            leaves = await conn.scalar(sa.text("SELECT count(*) FROM tlog_leaves WHERE kind = 'receipt'"))
        return {"executions": total, "seconds": elapsed, "submit_seconds": submitted, "leaves": leaves}
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        await pipeline.stop(timeout_s=5)
        await services.aclose()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- arq ---------------------------------------------------------------------------------------------
def arq_worker_main(redis_url: str, concurrency: int) -> None:
    """``bench/pipeline.py --arq-worker``: one arq worker process running the no-op task."""
    from arq.connections import RedisSettings
    from arq.worker import Worker

    worker = Worker(
        functions=[noop],
        queue_name=ARQ_QUEUE,
        redis_settings=RedisSettings.from_dsn(redis_url),
        max_jobs=concurrency,
        poll_delay=0.05,
        log_results=False,
        handle_signals=True,
    )
    worker.run()


async def run_arq(
    redis_url: str, total: int, concurrency: int, workdir: Path, run: int = 0
) -> dict[str, Any]:
    from arq.connections import RedisSettings, create_pool

    from tests.pipeline_support import child_environment

    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=ARQ_QUEUE)
    arguments = ["--arq-worker", "--redis", redis_url, "--concurrency", str(concurrency)]
    env = child_environment({"LOG_LEVEL": "WARNING"})
    workers = [spawn([SCRIPT, *arguments], env, workdir / f"arq-{n}.log") for n in range(2)]
    try:
        await asyncio.sleep(3.0)  # both workers up and polling

        async def results() -> int:
            count = 0
            async for _ in pool.scan_iter(match=f"arq:result:bench-{run}-*", count=1000):
                count += 1
            return count

        slots = asyncio.Semaphore(SUBMITTERS)

        async def enqueue(n: int) -> None:
            async with slots:
                job = await pool.enqueue_job("noop", _job_id=f"bench-{run}-{n}")
                assert job is not None, "arq refused a job id"

        started = time.perf_counter()
        await asyncio.gather(*(enqueue(n) for n in range(total)))
        submitted = time.perf_counter() - started

        async def all_results() -> bool:
            return await results() == total

        await wait_for(all_results, 600, "all arq results")
        return {"executions": total, "seconds": time.perf_counter() - started, "submit_seconds": submitted}
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        await pool.aclose()


async def main(args: argparse.Namespace) -> None:
    from tests.pipeline_support import RedisServer

    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="beacon-bench-pipeline-"))
    redis = RedisServer(workdir).start()
    redis_url = redis.url
    total = args.jobs * args.models
    beacon_rates: list[float] = []
    arq_rates: list[float] = []
    try:
        print(
            f"{total} executions ({args.jobs} jobs × {args.models} models), 2 workers × concurrency {args.concurrency}"
        )
        print(
            f"redis-server on {redis_url} (private), PostgreSQL {PG}; load average {os.getloadavg()[0]:.1f}"
        )
        print(
            "finalizers (diff report, bundle per job): " + ("off" if args.without_finalizers else "on"),
            flush=True,
        )
        for run in range(args.repeat):  # interleaved, so both see the same machine
            (workdir / str(run)).mkdir()
            beacon = await run_beacon(
                redis_url,
                args.jobs,
                args.models,
                args.concurrency,
                workdir / str(run),
                finalizers=not args.without_finalizers,
            )
            beacon_rates.append(beacon["executions"] / beacon["seconds"])
            arq = await run_arq(redis_url, total, args.concurrency, workdir / str(run), run)
            arq_rates.append(arq["executions"] / arq["seconds"])
            print(
                f"run {run + 1}: beacon {beacon_rates[-1]:.0f} executions/s "
                f"({beacon['seconds']:.2f}s, submission {beacon['submit_seconds']:.2f}s, {beacon['leaves']} receipts logged); "
                f"arq {arq_rates[-1]:.0f} jobs/s ({arq['seconds']:.2f}s)",
                flush=True,
            )
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    beacon_median, arq_median = statistics.median(beacon_rates), statistics.median(arq_rates)
    print(
        f"beacon: median {beacon_median:.0f} executions/s, best {max(beacon_rates):.0f} (signed, logged receipts)"
    )
    print(f"arq:    median {arq_median:.0f} jobs/s, best {max(arq_rates):.0f} (no-op task)")
    print(
        f"ratio beacon/arq (medians): {beacon_median / arq_median:.2f}x   (goals: >= 500 executions/s, >= 1.0x arq)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--models", type=int, default=10, help="noop executions per job")
    parser.add_argument("--concurrency", type=int, default=64, help="per worker, both systems")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, interleaved; medians reported")
    parser.add_argument(
        "--without-finalizers",
        action="store_true",
        help="no diff report or bundle per job (the pipeline alone)",
    )
    parser.add_argument("--arq-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.arq_worker:
        arq_worker_main(options.redis, options.concurrency)
    else:
        asyncio.run(main(options))
