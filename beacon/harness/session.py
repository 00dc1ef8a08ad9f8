"""What a phase notebook starts with: clients per role, the signing key, the runner's log.

::

    session = open_session(runner_url, admin_token_env="ADMIN_TOKEN", ...)
    results.watch(session.log)          # every HTTP call lands in the phase results
    session.admin.whoami()

With an empty ``runner_url`` (a notebook opened by hand in JupyterLab) the session starts an
embedded runner of its own, exports its tokens under the given variable names, and stops it when
the kernel exits; ``beacon day1`` passes the URL of the runner it started instead.

Stopping and starting a region's worker (the plan's "Stop job worker") goes through the session:
in the service topology (``beacon day1 --topology service``) the harness supervises real worker
processes and the session asks it to stop one (SIGTERM, by PID) and start a new one; otherwise the
runner's own admin API drains its in-process worker and starts it again.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beacon.client import BeaconClient, CallLog
from beacon.harness.launcher import EmbeddedRunner
from beacon.harness.topology import SupervisorClient
from beacon.keys import Ed25519Key, read_key_file

ROLES = ("admin", "operator", "viewer")


@dataclass
class Session:
    url: str
    log: CallLog
    anonymous: BeaconClient
    clients: dict[str, BeaconClient]
    """Clients of the roles whose token variable is set."""
    token_envs: dict[str, str]
    signing_key: Ed25519Key | None
    signing_key_env: str
    runner_log: Path | None
    embedded: EmbeddedRunner | None = None
    missing: dict[str, str] = field(default_factory=dict)
    """Role → why it has no client (its variable is unset)."""
    supervisor: SupervisorClient | None = None
    """The harness's worker supervisor (service topology), or None."""
    worker_actions: list[dict[str, Any]] = field(default_factory=list)
    """What :meth:`stop_worker` / :meth:`start_worker` did, and through what (for the phase's evidence)."""

    def stop_worker(self, worker: dict[str, Any]) -> dict[str, Any]:
        """Stop ``worker`` (a row of ``GET /admin/ops/workers``): its process, when the harness
        supervises the region's worker processes; else the runner drains it (admin API)."""
        region = str(worker["region"])
        if self.supervisor is not None and self.supervisor.supervises(region):
            done = {"via": "supervisor", "action": "stop", **self.supervisor.stop_worker(region)}
        else:
            done = {"via": "admin_api", "action": "drain", **self.admin.drain_worker(str(worker["id"]))}
        self.worker_actions.append(done)
        return done

    def start_worker(self, worker: dict[str, Any]) -> dict[str, Any]:
        """Start ``worker``'s region again: a new worker process (supervisor), or the runner's own
        in-process worker (admin API)."""
        region = str(worker["region"])
        if self.supervisor is not None and self.supervisor.supervises(region):
            done = {"via": "supervisor", "action": "start", **self.supervisor.start_worker(region)}
        else:
            done = {"via": "admin_api", "action": "start", **self.admin.start_worker(str(worker["id"]))}
        self.worker_actions.append(done)
        return done

    def client(self, role: str) -> BeaconClient:
        """The client holding ``role``'s token; KeyError saying which variable to set."""
        if role == "anonymous":
            return self.anonymous
        if role not in self.clients:
            raise KeyError(self.missing.get(role, f"no client for role {role!r}"))
        return self.clients[role]

    @property
    def admin(self) -> BeaconClient:
        return self.client("admin")

    @property
    def operator(self) -> BeaconClient:
        return self.client("operator")

    @property
    def viewer(self) -> BeaconClient:
        return self.client("viewer")

    def require_signing_key(self) -> Ed25519Key:
        if self.signing_key is None:
            raise KeyError(
                f"environment variable {self.signing_key_env} should name a JobSpec signing key file "
                "whose public key is in the runner's TRUSTED_KEYS"
            )
        return self.signing_key

    def read_runner_log(self) -> str | None:
        """The runner's log so far, or None when this session cannot read it (a remote runner)."""
        if self.runner_log is None or not self.runner_log.is_file():
            return None
        return self.runner_log.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        for client in (self.anonymous, *self.clients.values()):
            client.close()
        if self.supervisor is not None:
            self.supervisor.close()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def open_session(
    runner_url: str = "",
    *,
    admin_token_env: str = "ADMIN_TOKEN",  # noqa: S107 (the NAME of a variable, never a token)
    operator_token_env: str = "OPERATOR_TOKEN",  # noqa: S107
    viewer_token_env: str = "VIEWER_TOKEN",  # noqa: S107
    signing_key_env: str = "BEACON_SIGNING_KEY_FILE",
    runner_log_path: str = "",
    timeout_s: float = 30.0,
) -> Session:
    """Connect to ``runner_url`` (or start an embedded runner when it is empty)."""
    envs = {"admin": admin_token_env, "operator": operator_token_env, "viewer": viewer_token_env}
    embedded: EmbeddedRunner | None = None
    if not runner_url:
        embedded = EmbeddedRunner().start()
        atexit.register(embedded.stop)
        assert embedded.credentials is not None
        os.environ.update(
            embedded.credentials.env(
                {
                    "admin": admin_token_env,
                    "operator": operator_token_env,
                    "viewer": viewer_token_env,
                    "signing_key": signing_key_env,
                }
            )
        )
        runner_url = embedded.url
        runner_log_path = str(embedded.log_path)
    log = CallLog()
    anonymous = BeaconClient(runner_url, label="anonymous", timeout=timeout_s, log=log)
    clients: dict[str, BeaconClient] = {}
    missing: dict[str, str] = {}
    for role, name in envs.items():
        if os.environ.get(name, "").strip():
            clients[role] = BeaconClient(runner_url, token_env=name, label=role, timeout=timeout_s, log=log)
        else:
            missing[role] = f"environment variable {name} (the {role} token) is not set"
    key_file = os.environ.get(signing_key_env, "").strip()
    signing_key = read_key_file(Path(key_file)) if key_file else None
    return Session(
        url=runner_url,
        log=log,
        anonymous=anonymous,
        clients=clients,
        token_envs=envs,
        signing_key=signing_key,
        signing_key_env=signing_key_env,
        runner_log=Path(runner_log_path) if runner_log_path else None,
        embedded=embedded,
        missing=missing,
        supervisor=SupervisorClient.from_env() if embedded is None else None,
    )
