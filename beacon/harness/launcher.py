"""The embedded runner: ``beacon serve --embedded --port 0`` as a child process, ready to be tested.

It runs on a fresh data directory with generated admin/operator/viewer tokens and a trusted dev
signing key, logs to a file the phases can read (the T-15 phase checks that every refused request
was logged), finds the port the server bound by asking the OS which sockets the child listens on,
waits for ``/health/ready``, and stops the child by its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

from beacon.client import BeaconAPIError, BeaconClient, BeaconConnectionError
from beacon.config import without_settings
from beacon.keys import Ed25519Key, write_key_file

DEV_KEY_KID = "day1-dev"


class EmbeddedRunnerError(RuntimeError):
    """The embedded runner did not start (the message carries the end of its log)."""


@dataclass(frozen=True)
class RunnerCredentials:
    """What a client needs to use a runner: tokens per role and the trusted signing key file."""

    admin_token: str
    operator_token: str
    viewer_token: str
    signing_key_file: Path

    def env(self, names: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables a notebook reads (names as in the plan: ADMIN_TOKEN …)."""
        names = {
            "admin": "ADMIN_TOKEN",
            "operator": "OPERATOR_TOKEN",
            "viewer": "VIEWER_TOKEN",
            "signing_key": "BEACON_SIGNING_KEY_FILE",
            **(names or {}),
        }
        return {
            names["admin"]: self.admin_token,
            names["operator"]: self.operator_token,
            names["viewer"]: self.viewer_token,
            names["signing_key"]: str(self.signing_key_file),
        }


@dataclass
class EmbeddedRunner:
    """A ``beacon serve --embedded`` child process. Use as a context manager, or start()/stop()."""

    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    """Settings for the runner (e.g. ``{"SUBMIT_RATE_LIMIT_PER_MINUTE": "30"}``)."""
    startup_timeout_s: float = 90.0
    release_logs: bool = True
    """Run in release mode: structured JSON log lines (request ids, problem codes) the phases can search."""

    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    url: str = field(default="", init=False)
    credentials: RunnerCredentials | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    # --- life cycle ------------------------------------------------------------------------------
    def __enter__(self) -> EmbeddedRunner:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "runner.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def provision(self) -> RunnerCredentials:
        """The data directory, tokens and trusted signing key (made once; ``start`` calls this too)."""
        if self.credentials is None:
            if self.data_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="beacon-embedded-")
                self.data_dir = Path(self._tmp.name)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.credentials = self._provision(self.data_dir)
        return self.credentials

    def start(self) -> EmbeddedRunner:
        if self.process is not None:
            raise EmbeddedRunnerError("already started")
        env = self._environment(self.provision())
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from beacon.cli import main; main()",
                    "serve",
                    "--embedded",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                env=env,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our terminal's Ctrl-C is ours to handle; we stop it by PID
            )
        finally:
            log.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 15.0, *, keep_log: Path | None = None) -> int | None:
        """Stop the runner by PID: SIGTERM, then SIGKILL after ``timeout_s``. Returns its exit status.

        ``keep_log`` receives a copy of the runner's log (its data directory may be temporary).
        """
        process, self.process = self.process, None
        status: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    kill_tree(process.pid)
                    process.wait(5)
            status = process.returncode
        if keep_log is not None and self.data_dir is not None and self.log_path.is_file():
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_path, keep_log)
        if self._tmp is not None:  # a temporary data directory goes, and the credentials that lived in it
            self._tmp.cleanup()
            self._tmp = None
            self.data_dir = None
            self.credentials = None
        return status

    # --- internals -------------------------------------------------------------------------------
    @staticmethod
    def _provision(data_dir: Path) -> RunnerCredentials:
        key_file = data_dir / "dev-key.json"
        key = Ed25519Key.generate()
        write_key_file(key, key_file)
        trusted = [{"kid": DEV_KEY_KID, "public_key": key.public_key_b64, "status": "active"}]
        (data_dir / "trusted-keys.json").write_text(json.dumps(trusted, indent=2) + "\n", encoding="utf-8")
        return RunnerCredentials(
            admin_token="adm_" + secrets.token_urlsafe(24),
            operator_token="op_" + secrets.token_urlsafe(24),
            viewer_token="view_" + secrets.token_urlsafe(24),
            signing_key_file=key_file,
        )

    def _environment(self, credentials: RunnerCredentials) -> dict[str, str]:
        assert self.data_dir is not None
        env = without_settings(os.environ)  # nothing of the caller's configuration leaks in
        env.update(
            {
                "BEACON_ENV_FILE": str(self.data_dir / "no.env"),  # never read a stray .env
                "BEACON_DATA_DIR": str(self.data_dir),
                "ADMIN_TOKENS": credentials.admin_token,
                "OPERATOR_TOKENS": credentials.operator_token,
                "VIEWER_TOKENS": credentials.viewer_token,
                "TRUSTED_KEYS_FILE": str(self.data_dir / "trusted-keys.json"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.release_logs:
            env["BEACON_MODE"] = "release"
        env.update(self.extra_env)
        return env

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        port = self.port or None
        while port is None:
            self._fail_if_exited()
            port = _listening_port(self.process.pid)
            if port is None:
                if time.monotonic() > deadline:
                    raise EmbeddedRunnerError(self._failure("did not open a port in time"))
                time.sleep(0.05)
        self.url = f"http://{self.host}:{port}"
        last = "no answer yet"
        with BeaconClient(self.url, timeout=5.0, label="launcher") as client:
            while True:
                self._fail_if_exited()
                try:
                    response = client.ready()  # 200 ready, 503 (returned) not yet
                    if response.status_code == 200:
                        return
                    last = f"/health/ready answered {response.status_code}: {response.text[:200]}"
                except BeaconConnectionError as exc:
                    last = exc.reason
                except BeaconAPIError as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    raise EmbeddedRunnerError(
                        self._failure(f"not ready in {self.startup_timeout_s:.0f}s ({last})")
                    )
                time.sleep(0.1)

    def _fail_if_exited(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise EmbeddedRunnerError(self._failure(f"exited with status {self.process.returncode}"))

    def _failure(self, what: str) -> str:
        return f"embedded runner {what}; last lines of {self.log_path}:\n{log_tail(self.log_path)}"


def _listening_port(pid: int) -> int | None:
    try:
        connections = psutil.Process(pid).net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr:
            return int(connection.laddr.port)
    return None


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (kernels run in sessions of their own)."""
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(family, timeout=5)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
