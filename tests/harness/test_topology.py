"""The service topology: ``beacon serve`` and a ``beacon worker`` process per region on this machine's
PostgreSQL and Redis; the harness stops a region's worker by PID (its work waits in Redis) and
starts a new one (the work completes); at the end the run's database and Redis keys are gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from beacon.client import BeaconAPIError, BeaconClient
from beacon.harness import jobs
from beacon.harness.run_monitor import queue_depths
from beacon.harness.topology import (
    LOCAL_POSTGRES,
    LOCAL_REDIS,
    ServiceRunner,
    SupervisorClient,
    WorkerSupervisor,
    _delete_redis_keys,
)
from beacon.keys import read_key_file
from tests.services import PG_HOST, PG_PORT, REDIS_HOST, REDIS_PORT, require_service

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceRunner]:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    runner = ServiceRunner(tmp_path_factory.mktemp("service") / "logs", extra_env={"BEACON_WARM_UP": "false"})
    runner.start()
    yield runner
    runner.stop()


def database_exists(name: str) -> bool:
    import asyncpg

    async def look() -> bool:
        conn = await asyncpg.connect(LOCAL_POSTGRES)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        finally:
            await conn.close()

    return asyncio.run(look())


def submit(client: BeaconClient, runner: ServiceRunner, prefix: str, regions: list[str]) -> str:
    assert runner.credentials is not None
    key = read_key_file(runner.credentials.signing_key_file)
    job_id = jobs.new_job_id(prefix)
    response = client.request(
        "POST", "/api/v1/jobs", json=jobs.sign(jobs.jobspec(job_id, benchmark="noop", regions=regions), key)
    )
    assert response.status_code == 202, response.text
    return job_id


def test_serve_and_one_worker_process_per_region_on_postgres_and_redis(service: ServiceRunner) -> None:
    assert service.credentials is not None
    assert service.database_name is not None and database_exists(service.database_name)
    pids = {service.pid, *(w.pid for w in service.workers.values())}
    assert len(pids) == 4 and all(psutil.pid_exists(pid) for pid in pids if pid)
    with BeaconClient(service.url, token=service.credentials.operator_token) as operator:
        health = operator.request("GET", "/health").json()
        assert health["mode"] == "service"
        listed = operator.workers()["workers"]
        assert {(w["region"], w["pid"]) for w in listed} == {(r, w.pid) for r, w in service.workers.items()}
        job_id = submit(operator, service, "topo", ["US", "EU", "ASIA"])
        done = operator.wait_for_job(job_id, timeout=60, interval=0.3)
    assert done["status"] == "completed"
    assert {e["status"] for e in done["timeline"]} >= {"created", "enqueued", "published", "executing"}
    assert (service.log_dir / "runner.log").stat().st_size > 0
    for region in ("US", "EU", "ASIA"):
        assert "serving " + region in service.worker_log(region).read_text()


def test_the_harness_stops_a_worker_process_and_starts_a_new_one(service: ServiceRunner) -> None:
    assert service.credentials is not None
    supervisor = WorkerSupervisor(service)
    try:
        refused = httpx.post(f"{supervisor.url}/workers/EU/stop", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
        assert service.workers["EU"].running  # nothing happened
        client = SupervisorClient.from_env(supervisor.env())
        assert client is not None and client.supervises("EU")
        old = service.workers["EU"]
        stopped = client.stop_worker("EU")
        assert stopped["pid"] == old.pid and stopped["exit_status"] == 0 and not stopped["killed"]
        assert not psutil.pid_exists(old.pid) or psutil.Process(old.pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(BeaconAPIError) as again:
            client.stop_worker("EU")
        assert again.value.status == 409
        assert client.supervises("EU") and not client.supervises("MARS")  # stopped, still its own
        with BeaconClient(service.url, token=service.credentials.operator_token) as operator:
            row = next(w for w in operator.workers(include_gone=True)["workers"] if w["id"] == old.worker_id)
            assert row["state"] == "stopped"
            waiting = submit(operator, service, "topo-wait", ["EU"])
            time.sleep(2.0)
            assert operator.job(waiting)["status"] == "enqueued"  # no EU worker: its message waits
            assert queue_depths(operator.queue_stats())["EU"] >= 1  # Redis holds it
            started = client.start_worker("EU")
            assert started["pid"] != old.pid and psutil.pid_exists(started["pid"])
            assert operator.wait_for_job(waiting, timeout=60, interval=0.3)["status"] == "completed"
        assert [e["event"] for e in service.history if e["region"] == "EU"][-2:] == ["ended", "started"]
        client.close()
    finally:
        supervisor.close()


def test_stop_ends_every_process_and_leaves_no_database_or_keys(tmp_path: Path) -> None:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    runner = ServiceRunner(tmp_path / "logs", regions=("EU",), extra_env={"BEACON_WARM_UP": "false"})
    runner.start()
    name, prefix = runner.database_name, runner.redis_prefix
    pids = [runner.pid, runner.workers["EU"].pid]
    assert name and database_exists(name)
    runner.stop()
    assert not any(pid and psutil.pid_exists(pid) for pid in pids)
    assert not database_exists(name)
    assert _delete_redis_keys(LOCAL_REDIS, prefix) == 0  # nothing was left under the run's prefix
    assert [e["event"] for e in runner.history] == ["started", "started", "ended", "ended"]


def test_a_phase_session_stops_and_starts_through_the_supervisor(
    service: ServiceRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What notebook 08 calls: ``session.stop_worker(row)`` then ``session.start_worker(row)``."""
    from beacon.harness.session import open_session

    assert service.credentials is not None
    supervisor = WorkerSupervisor(service)
    for name, value in {**service.credentials.env(), **supervisor.env()}.items():
        monkeypatch.setenv(name, value)
    session = open_session(service.url)
    try:
        row = next(w for w in session.operator.workers()["workers"] if w["region"] == "ASIA")
        stopped = session.stop_worker(row)
        assert (stopped["via"], stopped["pid"], stopped["exit_status"]) == ("supervisor", row["pid"], 0)
        started = session.start_worker(row)  # the region has no process now: still the harness's
        assert started["via"] == "supervisor" and started["pid"] != row["pid"]
        assert [a["action"] for a in session.worker_actions] == ["stop", "start"]
        live = session.operator.workers(region="ASIA")["workers"]
        assert [w["pid"] for w in live] == [started["pid"]]
    finally:
        session.close()
        supervisor.close()
