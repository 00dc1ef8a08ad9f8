"""What a phase notebook starts with: clients per role, the signing key, the runner's log.

::

    session = open_session(runner_url, admin_token_env="ADMIN_TOKEN", ...)
    results.watch(session.log)          # every HTTP call lands in the phase results
    session.admin.whoami()

``beacon day1`` passes the URL of the runner it started. With an empty ``runner_url`` (a notebook
opened by hand in JupyterLab) the session reads the **session file** named by ``BEACON_SESSION_FILE``
(``make lab`` / ``beacon lab`` and ``beacon serve --embedded --session-file`` write it): the runner's
URL, the *names* of the variables holding its tokens, its log, and the run folder every phase of the
session writes its results and artefacts to — so the notebooks share one runner and one results
folder. The file never holds a token (decision 1401). Without a session file the notebook starts an
embedded runner of its own, with a fresh run folder under the system's temporary directory.

Phases that need earlier phases say so in their first cell and call :func:`require_phases`.

Stopping and starting a region's worker (the plan's "Stop job worker") goes through the session:
in the service topology (``beacon day1 --topology service``) the harness supervises real worker
processes and the session asks it to stop one (SIGTERM, by PID) and start a new one; otherwise the
runner's own admin API drains its in-process worker and starts it again.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beacon.client import BeaconClient, CallLog
from beacon.harness.launcher import EmbeddedRunner
from beacon.harness.plan import slug
from beacon.harness.results import PhaseResults, load_phase_results
from beacon.harness.topology import SupervisorClient
from beacon.keys import Ed25519Key, read_key_file

ROLES = ("admin", "operator", "viewer")
SESSION_FILE_ENV = "BEACON_SESSION_FILE"
SESSION_SCHEMA = "beacon.lab-session/v1"


class SessionFileError(ValueError):
    """The session file is missing, unreadable, or not a Beacon session file."""


class PhaseOrderError(RuntimeError):
    """A phase needs the results of earlier phases that this run folder does not hold."""


def write_session_file(
    path: Path,
    *,
    runner_url: str,
    run_dir: Path,
    token_envs: Mapping[str, str] | None = None,
    signing_key_env: str = "BEACON_SIGNING_KEY_FILE",
    runner_log: Path | None = None,
    written_by: str = "beacon",
) -> Path:
    """Write the session file notebooks read when ``runner_url`` is empty (names only, never tokens)."""
    document = {
        "schema": SESSION_SCHEMA,
        "runner_url": runner_url,
        "run_dir": str(run_dir.resolve()),
        "token_envs": dict(
            token_envs or {"admin": "ADMIN_TOKEN", "operator": "OPERATOR_TOKEN", "viewer": "VIEWER_TOKEN"}
        ),
        "signing_key_env": signing_key_env,
        "runner_log": str(runner_log.resolve()) if runner_log else None,
        "written_by": written_by,
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_session_file(path: Path | None = None) -> dict[str, Any] | None:
    """The session file at ``path`` (default: ``$BEACON_SESSION_FILE``), or None when none is named."""
    if path is None:
        named = os.environ.get(SESSION_FILE_ENV, "").strip()
        if not named:
            return None
        path = Path(named)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SessionFileError(f"{path}: cannot read the session file ({exc})") from exc
    if not isinstance(document, dict) or document.get("schema") != SESSION_SCHEMA:
        raise SessionFileError(f"{path}: not a {SESSION_SCHEMA} file")
    return document


def require_phases(results_dir: Path | None, needs: Sequence[str], *, phase: str) -> None:
    """Raise :class:`PhaseOrderError`, saying what to run first, unless every phase in ``needs``
    completed its results in ``results_dir`` (the run folder's ``results/``)."""
    missing = []
    for needed in needs:
        path = results_dir / f"{slug(needed)}.json" if results_dir else None
        try:
            document = load_phase_results(path) if path else None
        except ValueError:
            document = None
        if document is None or document.get("status") != "completed":
            missing.append(needed)
    if missing:
        where = (
            str(results_dir)
            if results_dir
            else "no results folder (results_path is empty and no session file)"
        )
        raise PhaseOrderError(
            f"phase {phase} needs the results of {', '.join(missing)} in {where}: run "
            f"{'that phase' if len(missing) == 1 else 'those phases'} first in the same session "
            "(make lab, then the notebooks in order), or the whole plan with beacon day1"
        )


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
    run_dir: Path | None = None
    """The run folder of a JupyterLab session (results/ and artefacts/), None under beacon day1."""

    def results_file(self, phase: str, results_path: str = "") -> Path | None:
        """Where phase ``phase`` writes its results: ``results_path``, else the session's run folder."""
        if results_path:
            return Path(results_path)
        return self.run_dir / "results" / f"{slug(phase)}.json" if self.run_dir else None

    def results_dir(self, results_path: str = "") -> Path | None:
        """The folder holding every phase's results of this run (for :func:`require_phases`)."""
        file = self.results_file("x", results_path)
        return file.parent if file else None

    def phase_results(self, phase: str, results_path: str = "", *, title: str | None = None) -> PhaseResults:
        """The phase's results document, written under the run folder."""
        return PhaseResults(self.results_file(phase, results_path), phase=phase, title=title)

    def artefacts_dir(self, phase: str, results_path: str = "") -> Path:
        """Where the phase saves files: ``<run folder>/artefacts/<phase>``, never the notebook's folder."""
        file = self.results_file(phase, results_path)
        if file is not None:
            base = file.resolve().parent.parent
        else:  # results kept in memory: the files go to a folder of their own, not the checkout
            base = Path(tempfile.mkdtemp(prefix="beacon-artefacts-"))
        out = base / "artefacts" / slug(phase)
        out.mkdir(parents=True, exist_ok=True)
        return out

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
    run_dir: Path | None = None
    shared = read_session_file() if not runner_url else None
    if shared is not None:
        runner_url = str(shared["runner_url"])
        envs.update(shared.get("token_envs") or {})
        signing_key_env = str(shared.get("signing_key_env") or signing_key_env)
        runner_log_path = runner_log_path or str(shared.get("runner_log") or "")
        run_dir = Path(str(shared["run_dir"]))
    elif not runner_url:
        run_dir = Path(tempfile.mkdtemp(prefix="beacon-lab-run-"))
        print(
            f"no session file (${SESSION_FILE_ENV}): starting an embedded runner for this notebook alone; "
            f"its results go to {run_dir} (run `make lab` to share one runner between notebooks)"
        )
        embedded = EmbeddedRunner().start()
        atexit.register(embedded.stop)
        assert embedded.credentials is not None
        os.environ.update(
            embedded.credentials.env(
                {
                    "admin": envs["admin"],
                    "operator": envs["operator"],
                    "viewer": envs["viewer"],
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
        run_dir=run_dir,
        supervisor=SupervisorClient.from_env() if embedded is None else None,
    )
