"""The service topology: ``beacon serve`` plus one ``beacon worker`` process per region, on
PostgreSQL and Redis — what ``beacon day1 --topology service`` runs the plan against.

State and queue are real services: ``DATABASE_URL`` / ``REDIS_URL`` when given, else this machine's
PostgreSQL (a fresh database per run, dropped at the end) and Redis (a fresh key prefix, its keys
deleted at the end). Every process is started and ended by its PID; their logs are written into
the run's ``logs/`` folder (``runner.log`` for the API, ``worker-<REGION>.log`` for each worker).

The harness is the workers' supervisor, as systemd or Kubernetes is in production: a phase asks it,
over a loopback HTTP endpoint (:class:`WorkerSupervisor`, bearer token), to stop a region's worker
process (SIGTERM: the worker drains and exits) and to start a new one; the runner's own
``POST /admin/ops/workers/{id}/start`` answers 409 ``not_supervised`` for worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from beacon.client import BeaconAPIError, BeaconClient, BeaconConnectionError
from beacon.config import REGIONS
from beacon.harness.launcher import (
    EmbeddedRunnerError,
    RunnerCredentials,
    beacon_command,
    end_process,
    log_tail,
    provision_credentials,
    runner_environment,
    wait_until_ready,
)

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
"""This machine's PostgreSQL (trust auth): a fresh database is made on it per run."""
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
"""This machine's Redis: a fresh key prefix per run."""

SUPERVISOR_URL_ENV = "BEACON_SUPERVISOR_URL"
SUPERVISOR_TOKEN_ENV = "BEACON_SUPERVISOR_TOKEN"  # noqa: S105 (the NAME of a variable)


class ServiceRunnerError(EmbeddedRunnerError):
    """The service topology did not start (the message carries the end of the failing log)."""


@dataclass
class WorkerProcess:
    region: str
    process: subprocess.Popen[bytes]
    started_at: float
    worker_id: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class ServiceRunner:
    """``beacon serve`` + ``beacon worker --region R`` for each region, on PostgreSQL and Redis.

    Same life cycle as :class:`~beacon.harness.launcher.EmbeddedRunner` (``provision``, ``start``,
    ``stop``, ``url``, ``credentials``, ``log_path``), plus :meth:`stop_worker` / :meth:`start_worker`.
    """

    log_dir: Path
    database_url: str | None = None
    """None: a fresh database on :data:`LOCAL_POSTGRES`, dropped by ``stop``."""
    redis_url: str | None = None
    """None: :data:`LOCAL_REDIS`. Either way the run gets a key prefix of its own."""
    regions: tuple[str, ...] = REGIONS
    host: str = "127.0.0.1"
    extra_env: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 120.0
    stop_timeout_s: float = 30.0

    url: str = field(default="", init=False)
    credentials: RunnerCredentials | None = field(default=None, init=False)
    server: subprocess.Popen[bytes] | None = field(default=None, init=False)
    workers: dict[str, WorkerProcess] = field(default_factory=dict, init=False)
    history: list[dict[str, Any]] = field(default_factory=list, init=False)
    """Every process started and ended: role, region, pid, exit status, times (for the report)."""
    database_name: str | None = field(default=None, init=False)
    """The database made for this run (None when DATABASE_URL was given)."""
    redis_prefix: str = field(default="", init=False)
    _effective_database_url: str = field(default="", init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    # --- life cycle ------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self._tmp is not None, "provision() first"
        return Path(self._tmp.name)

    @property
    def log_path(self) -> Path:
        return self.log_dir / "runner.log"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The ``beacon serve`` process (the runner under test), as EmbeddedRunner.process."""
        return self.server

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server else None

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.poll() is None

    def worker_log(self, region: str) -> Path:
        return self.log_dir / f"worker-{region}.log"

    def provision(self) -> RunnerCredentials:
        """Tokens and a trusted signing key in a private data directory (keys never go in the report)."""
        if self.credentials is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="beacon-service-")
            self.credentials = provision_credentials(self.data_dir)
        return self.credentials

    def start(self) -> ServiceRunner:
        if self.server is not None:
            raise ServiceRunnerError("already started")
        self.provision()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare_services()
            self.server = self._spawn("api", None, self.log_path, "serve", "--host", self.host, "--port", "0")
            self.url = wait_until_ready(
                self.server,
                self.host,
                None,
                self.startup_timeout_s,
                self._failure(self.log_path, "beacon serve"),
            )
            for region in self.regions:
                self._start_worker(region)
            for region in self.regions:
                self._await_worker(self.workers[region])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float | None = None, *, keep_log: Path | None = None) -> int | None:
        """Stop the workers (SIGTERM: they drain), then the API, each by PID (SIGKILL after
        ``timeout_s``); drop the run's database and delete its Redis keys. Returns the API's exit status."""
        timeout = self.stop_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            for region in list(self.workers):
                self._end(self.workers.pop(region).process, "worker", region, timeout)
            status = None
            if self.server is not None:
                status = self._end(self.server, "api", None, timeout)
                self.server = None
        if keep_log is not None and self.log_path.is_file() and keep_log.resolve() != self.log_path.resolve():
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            keep_log.write_bytes(self.log_path.read_bytes())
        self._release_services()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.credentials = None
        return status

    # --- the supervisor's verbs ------------------------------------------------------------------
    def stop_worker(self, region: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Stop the region's worker process: SIGTERM (it finishes its current work and exits), SIGKILL
        after ``timeout_s``. Returns what happened (pid, exit status, seconds, killed)."""
        with self._lock:
            worker = self.workers.get(region)
            if worker is None or not worker.running:
                raise LookupError(f"region {region} has no running worker process")
            started = time.monotonic()
            status = self._end(worker.process, "worker", region, timeout_s)
            del self.workers[region]
            return {
                "region": region,
                "pid": worker.pid,
                "worker_id": worker.worker_id,
                "signal": "SIGTERM",
                "exit_status": status,
                "killed": status is not None and status < 0 and status != -signal.SIGTERM,
                "stopped_in_s": round(time.monotonic() - started, 3),
            }

    def start_worker(self, region: str) -> dict[str, Any]:
        """Start a new worker process for the region; return once it heartbeats as a live worker."""
        with self._lock:
            current = self.workers.get(region)
            if current is not None and current.running:
                raise ValueError(f"region {region} already has a running worker process (pid {current.pid})")
            started = time.monotonic()
            worker = self._start_worker(region)
            self._await_worker(worker)
            return {
                "region": region,
                "pid": worker.pid,
                "worker_id": worker.worker_id,
                "started_in_s": round(time.monotonic() - started, 3),
            }

    def describe(self) -> dict[str, Any]:
        """The topology for the run summary: URLs without secrets, the prefix, every process."""
        return {
            "topology": "service",
            "regions": list(self.regions),
            "database": _without_password(self._effective_database_url),
            "database_created": self.database_name,
            "redis": _without_password(self.redis_url or LOCAL_REDIS),
            "redis_prefix": self.redis_prefix,
            "processes": [
                {"role": "api", "pid": self.pid, "running": self.running, "log": self.log_path.name},
                *(
                    {
                        "role": "worker",
                        "region": w.region,
                        "pid": w.pid,
                        "worker_id": w.worker_id,
                        "running": w.running,
                        "log": self.worker_log(w.region).name,
                    }
                    for w in self.workers.values()
                ),
            ],
            "history": list(self.history),
        }

    # --- internals -------------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        assert self.credentials is not None
        env = runner_environment(self.data_dir, self.credentials)
        env.update(
            {
                "DATABASE_URL": self._effective_database_url,
                "REDIS_URL": self.redis_url or LOCAL_REDIS,
                "BEACON_REDIS_PREFIX": self.redis_prefix,
            }
        )
        env.update(self.extra_env)
        return env

    def _spawn(
        self, role: str, region: str | None, log_path: Path, *arguments: str
    ) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                beacon_command(*arguments),
                env=self._environment(),
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our terminal's Ctrl-C is ours to handle; we stop it by PID
            )
        self.history.append(
            {"event": "started", "role": role, "region": region, "pid": process.pid, "at": time.time()}
        )
        return process

    def _start_worker(self, region: str) -> WorkerProcess:
        process = self._spawn("worker", region, self.worker_log(region), "worker", "--region", region)
        worker = WorkerProcess(region, process, time.time())
        self.workers[region] = worker
        return worker

    def _await_worker(self, worker: WorkerProcess) -> None:
        """Until the worker process heartbeats as a live worker of its region (by its pid)."""
        assert self.credentials is not None
        deadline = time.monotonic() + self.startup_timeout_s
        failure = self._failure(self.worker_log(worker.region), f"worker {worker.region}")
        last = "not registered yet"
        with BeaconClient(
            self.url, token=self.credentials.operator_token, label="launcher", timeout=5.0
        ) as client:
            while True:
                if not worker.running:
                    raise ServiceRunnerError(failure(f"exited with status {worker.process.returncode}"))
                try:
                    listed = client.workers(region=worker.region)["workers"]
                    mine = next((w for w in listed if w.get("pid") == worker.pid and w.get("live")), None)
                    if mine is not None:
                        worker.worker_id = str(mine["id"])
                        return
                except (BeaconAPIError, BeaconConnectionError) as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    raise ServiceRunnerError(failure(f"not live in {self.startup_timeout_s:.0f}s ({last})"))
                time.sleep(0.2)

    def _end(
        self, process: subprocess.Popen[bytes], role: str, region: str | None, timeout_s: float
    ) -> int | None:
        end_process(process, timeout_s)
        self.history.append(
            {
                "event": "ended",
                "role": role,
                "region": region,
                "pid": process.pid,
                "exit_status": process.returncode,
                "at": time.time(),
            }
        )
        return process.returncode

    def _failure(self, log: Path, what: str) -> Callable[[str], str]:
        return lambda problem: f"{what} {problem}; last lines of {log}:\n{log_tail(log)}"

    def _prepare_services(self) -> None:
        self.redis_prefix = f"beacon-day1-{secrets.token_hex(6)}"
        if self.database_url:
            self._effective_database_url = self.database_url
            return
        self.database_name = f"beacon_day1_{secrets.token_hex(6)}"
        try:
            asyncio.run(_postgres_admin(LOCAL_POSTGRES, f'CREATE DATABASE "{self.database_name}"'))
        except Exception as exc:
            self.database_name = None
            raise ServiceRunnerError(
                f"cannot create a database on this machine's PostgreSQL ({_without_password(LOCAL_POSTGRES)}): "
                f"{exc}; start it, or set DATABASE_URL"
            ) from None
        self._effective_database_url = _with_database(LOCAL_POSTGRES, self.database_name)

    def _release_services(self) -> None:
        if self.redis_prefix:
            with contextlib.suppress(Exception):
                _delete_redis_keys(self.redis_url or LOCAL_REDIS, self.redis_prefix)
        if self.database_name is not None:
            with contextlib.suppress(Exception):
                asyncio.run(
                    _postgres_admin(
                        LOCAL_POSTGRES, f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)'
                    )
                )
            self.database_name = None


async def _postgres_admin(url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server of ``url``."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://", 1), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


def _delete_redis_keys(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(cast(int, client.delete(*keys))) if keys else 0
    finally:
        client.close()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _without_password(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


# --- the supervisor endpoint ---------------------------------------------------------------------------


class WorkerSupervisor:
    """A loopback HTTP endpoint through which phase notebooks ask the harness to stop and start a
    region's worker process (``POST /workers/{region}/stop|start``, ``GET /processes``).

    Bound at construction (so its URL and token can go into the phases' environment before they
    start); serves from a thread until ``close``.
    """

    def __init__(self, runner: ServiceRunner, host: str = "127.0.0.1") -> None:
        self.runner = runner
        self.token = secrets.token_urlsafe(24)
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="beacon-supervisor", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """The variables a phase's session reads to find this supervisor."""
        return {SUPERVISOR_URL_ENV: self.url, SUPERVISOR_TOKEN_ENV: self.token}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def handle(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        """(status, body) for one request (already authenticated)."""
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if method == "GET" and parts == ["processes"]:
            return 200, self.runner.describe()
        if method == "POST" and len(parts) == 3 and parts[0] == "workers" and parts[2] in ("stop", "start"):
            region = parts[1].upper()
            if region not in self.runner.regions:
                return 404, _problem(404, "unknown_region", f"this topology has no region {parts[1]!r}")
            try:
                if parts[2] == "stop":
                    return 200, self.runner.stop_worker(region)
                return 200, self.runner.start_worker(region)
            except LookupError as exc:
                return 409, _problem(409, "worker_not_running", str(exc))
            except ValueError as exc:
                return 409, _problem(409, "worker_running", str(exc))
            except EmbeddedRunnerError as exc:
                return 502, _problem(502, "worker_failed", str(exc))
        return 404, _problem(404, "not_found", f"no route {method} {path}")


def _problem(status: int, code: str, detail: str) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "status": status,
        "code": code,
        "title": code.replace("_", " "),
        "detail": detail,
    }


def _handler(supervisor: WorkerSupervisor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            given = self.headers.get("Authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {supervisor.token}".encode()):
                status, body = 401, _problem(401, "unauthorized", "the supervisor's bearer token is required")
            else:
                status, body = supervisor.handle(method, self.path)
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", "application/json" if status < 400 else "application/problem+json"
            )
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return None  # the runner's history records what was done

    return Handler


class SupervisorClient:
    """What a phase uses to ask the harness to stop or start a region's worker process."""

    def __init__(self, url: str, token: str, timeout_s: float = 120.0) -> None:
        self._client = BeaconClient(url, token=token, label="supervisor", timeout=timeout_s)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SupervisorClient | None:
        """The harness's supervisor, when this process runs a phase of a service-topology run."""
        import os

        env = os.environ if environ is None else environ
        url, token = env.get(SUPERVISOR_URL_ENV, "").strip(), env.get(SUPERVISOR_TOKEN_ENV, "").strip()
        return cls(url, token) if url and token else None

    def _call(self, method: str, path: str) -> dict[str, Any]:
        response = self._client.request(method, path)
        if response.status_code >= 400:
            raise BeaconAPIError.from_response(response)
        body: dict[str, Any] = response.json()
        return body

    def processes(self) -> dict[str, Any]:
        return self._call("GET", "/processes")

    def supervises(self, region: str) -> bool:
        """Whether the harness owns this region's worker processes (running or stopped by it)."""
        return region in self.processes()["regions"]

    def stop_worker(self, region: str) -> dict[str, Any]:
        return self._call("POST", f"/workers/{region}/stop")

    def start_worker(self, region: str) -> dict[str, Any]:
        return self._call("POST", f"/workers/{region}/start")

    def close(self) -> None:
        self._client.close()
