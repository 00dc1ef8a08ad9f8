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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

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
                beacon_command("serve", "--embedded", "--host", self.host, "--port", str(self.port)),
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
            status = end_process(process, timeout_s)
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
        return provision_credentials(data_dir)

    def _environment(self, credentials: RunnerCredentials) -> dict[str, str]:
        assert self.data_dir is not None
        env = runner_environment(self.data_dir, credentials, release_logs=self.release_logs)
        env.update(self.extra_env)
        return env

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        self.url = wait_until_ready(
            self.process, self.host, self.port or None, self.startup_timeout_s, self._failure
        )

    def _failure(self, what: str) -> str:
        return f"embedded runner {what}; last lines of {self.log_path}:\n{log_tail(self.log_path)}"


def wait_until_ready(
    process: subprocess.Popen[bytes],
    host: str,
    port: int | None,
    timeout_s: float,
    failure: Callable[[str], str],
) -> str:
    """Wait until ``process`` listens (on ``port``, or the one it picked) and ``/health/ready``
    answers 200; return its URL. EmbeddedRunnerError (``failure(what)``) if it exits or is late."""
    deadline = time.monotonic() + timeout_s

    def fail_if_exited() -> None:
        if process.poll() is not None:
            raise EmbeddedRunnerError(failure(f"exited with status {process.returncode}"))

    while port is None:
        fail_if_exited()
        port = listening_port(process.pid)
        if port is None:
            if time.monotonic() > deadline:
                raise EmbeddedRunnerError(failure("did not open a port in time"))
            time.sleep(0.05)
    url = f"http://{host}:{port}"
    last = "no answer yet"
    with BeaconClient(url, timeout=5.0, label="launcher") as client:
        while True:
            fail_if_exited()
            try:
                response = client.ready()  # 200 ready, 503 (returned) not yet
                if response.status_code == 200:
                    return url
                last = f"/health/ready answered {response.status_code}: {response.text[:200]}"
            except BeaconConnectionError as exc:
                last = exc.reason
            except BeaconAPIError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise EmbeddedRunnerError(failure(f"not ready in {timeout_s:.0f}s ({last})"))
            time.sleep(0.1)


def provision_credentials(data_dir: Path) -> RunnerCredentials:
    """Tokens per role and a trusted JobSpec signing key (``dev-key.json``, listed in ``trusted-keys.json``)."""
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


def runner_environment(
    data_dir: Path, credentials: RunnerCredentials, *, release_logs: bool = True
) -> dict[str, str]:
    """The environment of a runner process the harness starts: nothing of the caller's Beacon
    configuration, the data directory, the tokens and trusted keys of ``credentials``."""
    env = without_settings(os.environ)  # nothing of the caller's configuration leaks in
    env.update(
        {
            "BEACON_ENV_FILE": str(data_dir / "no.env"),  # never read a stray .env
            "BEACON_DATA_DIR": str(data_dir),
            "ADMIN_TOKENS": credentials.admin_token,
            "OPERATOR_TOKENS": credentials.operator_token,
            "VIEWER_TOKENS": credentials.viewer_token,
            "TRUSTED_KEYS_FILE": str(data_dir / "trusted-keys.json"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if release_logs:
        env["BEACON_MODE"] = "release"
    return env


def beacon_command(*arguments: str) -> list[str]:
    """``beacon ARGUMENTS…`` run by this interpreter (no console script on PATH needed)."""
    return [sys.executable, "-c", "from beacon.cli import main; main()", *arguments]


def listening_port(pid: int) -> int | None:
    """The TCP port process ``pid`` listens on, once it does."""
    try:
        connections = psutil.Process(pid).net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr:
            return int(connection.laddr.port)
    return None


def end_process(process: subprocess.Popen[Any], timeout_s: float) -> int | None:
    """Stop a child by its PID: SIGTERM, then its whole tree SIGKILLed after ``timeout_s``; its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            process.wait(5)
    return process.returncode


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
