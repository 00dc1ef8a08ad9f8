"""``beacon serve --embedded --port 0``, ``beacon ops …`` against it, and ``beacon backup`` /
``beacon restore`` between SQLite and PostgreSQL — real processes, real stores."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from beacon.backup import BackupError, check_backup, restore_backup, write_backup
from beacon.queue.inprocess import InProcessQueue
from beacon.store import Database
from beacon.store.tables import executions, jobs, outbox, tlog_leaves
from tests.pipeline_support import REPO, BeaconProcess, Submitter, child_environment

OPERATOR, ADMIN = "op-cli-token", "adm-cli-token"


def beacon(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from beacon.cli import main; main()", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def submitter() -> Submitter:
    return Submitter()


@pytest.fixture
def embedded(tmp_path: Path, submitter: Submitter) -> Iterator[tuple[BeaconProcess, str, dict[str, str]]]:
    env = child_environment(
        {
            "BEACON_DATA_DIR": str(tmp_path / "data"),
            "OPERATOR_TOKENS": OPERATOR,
            "ADMIN_TOKENS": ADMIN,
            "TRUSTED_KEYS": submitter.trusted_keys,
            "BEACON_HEARTBEAT_SECONDS": "0.2",
            "BEACON_WORKER_LEASE_SECONDS": "1.0",
        }
    )
    process = BeaconProcess(["serve", "--embedded", "--port", "0"], env, tmp_path / "serve.log").start()
    url = ""
    deadline = time.monotonic() + 60
    while not url:
        assert process.alive and time.monotonic() < deadline, process.log()[-3000:]
        url = next(
            (
                line.split()[3]
                for line in process.log().splitlines()
                if line.startswith("Beacon listening on ")
            ),
            "",
        )
        time.sleep(0.1)
    yield process, url, env
    process.terminate()


@pytest.mark.slow
def test_embedded_serve_runs_jobs_and_answers_the_ops_commands(
    embedded: tuple[BeaconProcess, str, dict[str, str]], submitter: Submitter, tmp_path: Path
) -> None:
    process, url, env = embedded
    with httpx.Client(base_url=url, timeout=10) as http:
        answer = http.post(
            "/api/v1/jobs",
            content=submitter.body("cli-job", regions=["US", "EU", "ASIA"]),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 30
        while http.get("/api/v1/jobs/cli-job").json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.1)

    ops_env = {**env, "BEACON_URL": url, "OPERATOR_TOKEN": OPERATOR, "ADMIN_TOKEN": ADMIN}
    queues = beacon("ops", "queues", "--json", "--token-env", "OPERATOR_TOKEN", env=ops_env)
    assert queues.returncode == 0, queues.stderr
    stats = json.loads(queues.stdout)
    assert stats["kind"] == "inprocess" and {r["region"] for r in stats["regions"]} == {"US", "EU", "ASIA"}
    workers = beacon("ops", "workers", "--json", "--token-env", "OPERATOR_TOKEN", env=ops_env)
    listed = json.loads(workers.stdout)["workers"]
    assert sorted(w["region"] for w in listed) == ["ASIA", "EU", "US"]

    denied = beacon("ops", "pause", "--token-env", "OPERATOR_TOKEN", env=ops_env)
    assert denied.returncode == 1 and "403 forbidden" in denied.stderr
    paused = beacon("ops", "pause", "--reason", "drill", "--token-env", "ADMIN_TOKEN", env=ops_env)
    assert paused.returncode == 0 and "submissions paused" in paused.stdout
    resumed = beacon("ops", "resume", "--token-env", "ADMIN_TOKEN", env=ops_env)
    assert resumed.returncode == 0

    drained = beacon("ops", "drain", next(w["id"] for w in listed if w["region"] == "EU"), env=ops_env)
    assert drained.returncode == 0 and '"draining"' in drained.stdout

    backup_file = tmp_path / "remote.jsonl.gz"
    remote = beacon("backup", str(backup_file), "--url", url, "--token-env", "ADMIN_TOKEN", env=ops_env)
    assert remote.returncode == 0, remote.stderr
    assert check_backup(backup_file)[1]["counts"]["jobs"] == 1

    assert process.terminate() == 0  # SIGTERM: workers drain, then a clean exit
    log = process.log()
    assert "stopped" in log and "Traceback" not in log


def test_ops_commands_need_a_token(tmp_path: Path) -> None:
    result = beacon("ops", "queues", env=child_environment({}))
    assert result.returncode == 1 and "no token" in result.stderr


async def _seed(url: str, submitter: Submitter, data_dir: Path) -> None:
    """Three finished jobs and one waiting, written by a real embedded pipeline."""
    from beacon.boot import open_runtime
    from beacon.config import Settings
    from beacon.worker.service import Pipeline
    from tests.pipeline_support import wait_for_jobs

    settings = Settings(
        _env_file=None,
        database_url=url,
        embedded=True,
        trusted_keys=submitter.trusted_keys,
        data_dir=data_dir,
    )
    async with open_runtime(settings) as runtime:
        pipeline = Pipeline.embedded(runtime)
        await pipeline.start()
        try:
            ids = [await submitter.submit(runtime, f"bk-{n}", regions=["US", "EU"]) for n in range(3)]
            await wait_for_jobs(runtime.db, ids, timeout_s=30)
            await submitter.submit(runtime, "bk-waiting", regions=["ASIA"])  # no ASIA worker after the stop
        finally:
            await pipeline.stop(timeout_s=10)


@pytest.mark.postgres
async def test_backup_of_sqlite_restores_into_postgres_and_back(
    sqlite_url: str, postgres_url: str, tmp_path: Path, submitter: Submitter
) -> None:
    await _seed(sqlite_url, submitter, tmp_path / "data")
    source = Database(sqlite_url)
    queue = InProcessQueue()
    await queue.publish("ASIA", [{"execution_id": "x", "job_id": "bk-waiting", "region": "ASIA"}])
    file = tmp_path / "backup.jsonl.gz"
    summary = await write_backup(source, queue, file)
    assert summary.counts["jobs"] == 4 and summary.counts["executions"] == 7 and summary.queue["ASIA"] == 1

    target = Database(postgres_url)
    restored = await restore_backup(target, file)
    assert restored.counts == summary.counts
    async with source.connect() as a, target.connect() as b:
        for table in (jobs, executions, tlog_leaves):
            key = next(iter(table.primary_key.columns))
            left = [dict(r._mapping) for r in await a.execute(sa.select(table).order_by(key))]
            right = [dict(r._mapping) for r in await b.execute(sa.select(table).order_by(key))]
            assert left == right, table.name
        # sequences moved past the restored ids: new rows get fresh ids
        await b.commit()
    async with target.begin() as conn:
        new_id = (
            await conn.execute(
                outbox.insert().values(topic="EU", payload={}, created_at=1.0).returning(outbox.c.id)
            )
        ).scalar()
    async with source.connect() as conn:
        assert new_id > (await conn.scalar(sa.select(sa.func.max(outbox.c.id))) or 0)

    with pytest.raises(BackupError, match="not empty"):
        await restore_backup(target, file)
    back = tmp_path / "back.jsonl.gz"
    await write_backup(target, None, back)
    fresh = Database(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    await fresh.migrate()
    assert (await restore_backup(fresh, back)).counts["executions"] == 7
    for db in (source, target, fresh):
        await db.close()


async def test_a_damaged_or_unfinished_backup_is_refused(
    sqlite_url: str, tmp_path: Path, submitter: Submitter
) -> None:
    await _seed(sqlite_url, submitter, tmp_path / "data")
    db = Database(sqlite_url)
    file = tmp_path / "b.jsonl.gz"
    await write_backup(db, None, file)
    lines = gzip.decompress(file.read_bytes()).splitlines()
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines[:-1])))
    with pytest.raises(BackupError, match="incomplete"):
        check_backup(tmp_path / "cut.jsonl.gz")
    (tmp_path / "short.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines[:3] + lines[-1:])))
    with pytest.raises(BackupError, match="counts differ"):
        check_backup(tmp_path / "short.jsonl.gz")
    (tmp_path / "junk.gz").write_bytes(b"not gzip")
    with pytest.raises(BackupError, match="not a readable"):
        check_backup(tmp_path / "junk.gz")
    await db.close()
