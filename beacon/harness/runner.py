"""Running a plan: every phase notebook through papermill, in order, into ``reports/<run-id>/``.

For each phase: parameters are resolved and validated (all phases, before the first one starts),
the notebook runs in a child process (:mod:`beacon.harness.execute`) on the pinned ``beacon``
kernel with a wall-clock budget; a hang or a dead kernel becomes a failed phase and the run goes
on (unless ``fail_fast``). Without a runner URL an embedded runner is started for the run and
stopped at the end. Then: success criteria, ``summary.json``, HTML copies of the executed
notebooks, the self-attestation, and ``index.html``.

Run folder layout::

    reports/<run-id>/
      index.html  summary.json  attestation.json  monitor.jsonl
      inputs/      the plan and the input notebooks, as run (hashed into the attestation)
      notebooks/   executed notebooks (.ipynb and .html)
      results/     one phase-results JSON per phase
      logs/        papermill output per phase, the embedded runner's log
      plots/       the report's figures as PNG
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from beacon import __version__
from beacon.harness.components import Served, served_components, served_rows
from beacon.harness.criteria import evaluate_criteria, phase_check_status, run_verdict
from beacon.harness.launcher import EmbeddedRunner, kill_tree, log_tail
from beacon.harness.monitor import RunMonitor
from beacon.harness.plan import (
    PhaseSpec,
    Plan,
    PlanError,
    load_plan,
    resolve_plan,
    slug,
    split_overrides,
)
from beacon.harness.results import load_phase_results, write_json_atomic
from beacon.harness.summary import SUMMARY_SCHEMA
from beacon.harness.topology import ServiceRunner, WorkerSupervisor
from beacon.harness.trust import ENV as PINNED_KEYS_ENV
from beacon.harness.trust import PinnedKeys
from beacon.processes import describe_exit

KERNEL_GRACE_S = 20.0
"""Added to a phase's timeout for starting and stopping its kernel."""

PhaseStatus = Literal["passed", "failed", "error", "skipped"]
Topology = Literal["embedded", "service"]
TOPOLOGIES: tuple[Topology, ...] = ("embedded", "service")

INJECTED = ("runner_url", "results_path", "runner_log_path", "plan_path", "monitor_path", "run_id")


class HarnessError(RuntimeError):
    """The run could not be carried out at all (no kernel, runner did not start …)."""


@dataclass
class RunOptions:
    plan_path: Path | None = None
    """The plan file (or a shipped plan's name, see ``resolve_plan``); None: the shipped Day-1 plan."""
    runner_url: str | None = None
    """A live runner; None starts an embedded one."""
    runner_log_path: Path | None = None
    """A live runner's log file, when the phases can read it (the embedded runner's is known)."""
    phases: list[str] | None = None
    out_dir: Path = Path("reports")
    fail_fast: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    """Overrides: ``name`` (every phase that takes it) or ``phase.name``."""
    run_id: str | None = None
    kernel: str | None = None
    attest: bool = True
    html: bool = True
    runner_env: dict[str, str] = field(default_factory=dict)
    """Settings for the runner the harness starts (embedded or service topology)."""
    topology: Topology = "embedded"
    """Without a runner URL: ``embedded`` (one ``beacon serve --embedded`` on SQLite) or ``service``
    (``beacon serve`` + one ``beacon worker`` per region on PostgreSQL and Redis)."""
    database_url: str | None = None
    """Service topology: the PostgreSQL to use (None: a fresh database on this machine's server)."""
    redis_url: str | None = None
    """Service topology: the Redis to use (None: this machine's; a fresh key prefix either way)."""
    monitor_interval_s: float = 1.0
    kernel_grace_s: float = KERNEL_GRACE_S
    """Added to each phase's timeout for starting and stopping its kernel."""
    prewarm: bool = True
    """Start the next phase's process and kernel while the current phase runs."""
    require_all: bool = False
    """A criterion not exercised (a substitute served, a check could not run) fails the run."""
    pins: PinnedKeys | None = None
    """Keys T+45 verifies against (None: the runner's own, trusted on first use)."""
    live: bool = False
    """The live run: every phase gets ``live=true`` (real backends, GPU, the plan's models, Golem)."""


@dataclass
class PhaseRun:
    spec: PhaseSpec
    parameters: dict[str, Any]
    status: PhaseStatus = "skipped"
    error: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    notebook: str = ""
    executed: str | None = None
    html: str | None = None
    results: str | None = None
    log: str | None = None
    document: dict[str, Any] | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)
    accounting: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.spec.id,
            "title": self.spec.title,
            "section": self.spec.section,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "timeout_s": self.spec.timeout_s,
            "notebook": self.notebook,
            "executed": self.executed,
            "html": self.html,
            "results_path": self.results,
            "log": self.log,
            "parameters": self.parameters,
            "declared_checks": [{"id": c.id, "title": c.title, "plan": c.plan} for c in self.spec.checks],
            "accounting": self.accounting,
            "cells": self.cells,
            "results": self.document,
        }


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return int(self.summary["exit_code"])


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def require_kernel(name: str) -> None:
    """HarnessError unless the Jupyter kernel ``name`` is installed (``make setup`` installs ``beacon``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name not in KernelSpecManager().find_kernel_specs():
        raise HarnessError(
            f"the Jupyter kernel {name!r} is not installed; run `make setup` "
            f"(or: {sys.executable} -m ipykernel install --sys-prefix --name {name})"
        )


def cell_timings(notebook_path: Path) -> list[dict[str, Any]]:
    """Per-cell timing and status from papermill's metadata in an executed notebook."""
    try:
        notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    cells = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("papermill", {})
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        first = next((line for line in source.splitlines() if line.strip()), "")
        tags = cell.get("metadata", {}).get("tags", [])
        cells.append(
            {
                "index": index,
                "label": first[:100],
                "tags": tags,
                "status": meta.get("status"),
                "start_time": meta.get("start_time"),
                "end_time": meta.get("end_time"),
                "duration_s": meta.get("duration"),
                "exception": bool(meta.get("exception")),
            }
        )
    return cells


class _PhaseProcess:
    """One ``beacon.harness.execute`` child: its events, its log and the processes it starts."""

    def __init__(self, command: list[str], env: Mapping[str, str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.PIPE,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.reader = threading.Thread(target=_read_events, args=(self.process, self.events), daemon=True)
        self.reader.start()
        self.family = _Family(self.process.pid)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def hand_over(self, spec_path: Path) -> bool:
        """Give a waiting (standby) process its phase; False if it is no longer able to take one."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(str(spec_path).encode() + b"\n")
            self.process.stdin.close()
        except OSError:
            return False
        return True

    def kill(self) -> None:
        if self.alive:
            kill_tree(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        self.family.kill_survivors()
        self.reader.join(5)


class PhaseExecutor:
    """Runs phase notebooks in child processes, each under a wall-clock budget.

    With ``prewarm`` the next phase's process is started while the current one runs: it imports
    papermill, starts its kernel (same kernel, environment and folder for every phase) and imports
    the modules every phase notebook uses, silently, then waits for its notebook — so a phase does
    not pay for interpreter and kernel start-up. Each phase still gets a fresh process and kernel.
    """

    def __init__(
        self,
        run_dir: Path,
        kernel: str,
        env: Mapping[str, str],
        grace_s: float = KERNEL_GRACE_S,
        *,
        prewarm: bool = True,
    ) -> None:
        self.run_dir = run_dir
        self.kernel = kernel
        self.env = dict(env)
        self.grace_s = grace_s
        self.prewarm = prewarm
        self._standby: _PhaseProcess | None = None
        self._spawned = 0

    def _spawn(self) -> _PhaseProcess:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._spawned += 1
        command = [
            sys.executable,
            "-m",
            "beacon.harness.execute",
            "--standby",
            "--kernel",
            self.kernel,
            "--cwd",
            str(self.run_dir),
            "--start-timeout",
            str(max(self.grace_s, 10.0)),
        ]
        return _PhaseProcess(command, self.env, self.run_dir, logs / f".phase-process-{self._spawned}.log")

    def warm_up(self) -> None:
        """Start the process the next phase will use (if pre-warming is on and none is waiting)."""
        if self.prewarm and (self._standby is None or not self._standby.alive):
            self._standby = self._spawn()

    def close(self) -> None:
        """Stop a waiting process that no phase will use."""
        if self._standby is not None:
            self._standby.kill()
            self._standby.log_path.unlink(missing_ok=True)
            self._standby = None

    def run(
        self,
        phase: PhaseSpec,
        input_path: Path,
        output_path: Path,
        parameters: dict[str, Any],
        on_event: Callable[[dict[str, Any]], None],
        *,
        more_to_come: bool = False,
        runner_gone: Callable[[], str | None] | None = None,
    ) -> dict[str, Any]:
        """Execute; returns the final event (``outcome`` is ok, cell_error, kernel_died, cell_timeout,
        timeout, runner_exited or harness_error). ``runner_gone`` says how the runner under test ended, if
        it did: the phase is then stopped at once (it cannot pass without a runner)."""
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        spec_path = logs / f"{slug(phase.id)}.spec.json"
        write_json_atomic(
            spec_path,
            {
                "input": str(input_path),
                "output": str(output_path),
                "parameters": parameters,
                "kernel": self.kernel,
                "cwd": str(self.run_dir),
                "cell_timeout_s": phase.timeout_s,
                "start_timeout_s": max(self.grace_s, 10.0),
            },
        )
        log_path = logs / f"{slug(phase.id)}.log"
        child, self._standby = self._standby, None
        if child is None or not child.alive or not child.hand_over(spec_path):
            if child is not None:
                child.kill()
            child = self._spawn()
            child.hand_over(spec_path)
        child.log_path.replace(log_path)  # the open file keeps being written under its new name
        child.log_path = log_path
        if more_to_come:
            self.warm_up()
        budget = phase.timeout_s + self.grace_s
        try:
            outcome = self._follow(child, time.monotonic() + budget, on_event, runner_gone)
        finally:
            child.family.kill_survivors()  # kernels run in sessions of their own: none may outlive the phase
            child.reader.join(5)
        if outcome is not None:
            return {
                **outcome,
                "evalue": outcome["evalue"].format(
                    budget=budget, timeout=phase.timeout_s, grace=self.grace_s
                ),
            }
        if child.family.final is None:
            return {
                "event": "end",
                "outcome": "harness_error",
                "evalue": f"the phase process exited with status {child.process.returncode} without a result; "
                f"last lines of {log_path.name}:\n{log_tail(log_path, 15)}",
            }
        return child.family.final

    @staticmethod
    def _follow(
        child: _PhaseProcess,
        deadline: float,
        on_event: Callable[[dict[str, Any]], None],
        runner_gone: Callable[[], str | None] | None = None,
    ) -> dict[str, Any] | None:
        """Relay events until the child exits; kill it at the deadline (returns the timeout outcome) or when
        the runner under test has ended (the runner_exited outcome)."""
        process, events, family = child.process, child.events, child.family
        while True:
            family.remember()
            gone = runner_gone() if runner_gone is not None else None
            if gone is not None and family.final is None:
                kill_tree(process.pid)
                process.wait(10)
                return {
                    "event": "end",
                    "outcome": "runner_exited",
                    "evalue": f"the runner under test {gone} during this phase; the phase was stopped",
                }
            try:
                event = events.get(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
            except queue.Empty:
                event = {}
            if event is None:  # the child closed stdout: it is exiting
                break
            if event:
                if event.get("event") == "end":
                    family.final = event
                if event.get("event") != "standby":
                    on_event(event)
            if time.monotonic() >= deadline:
                kill_tree(process.pid)
                process.wait(10)
                return {
                    "event": "end",
                    "outcome": "timeout",
                    "evalue": "the phase ran past its budget of {budget:.0f}s (timeout {timeout:.0f}s + {grace:.0f}s "
                    "for the kernel) and was killed with its kernel",
                }
        try:
            process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            process.wait(10)
        return None


class _Family:
    """The processes a phase started (papermill, its kernel), remembered while they run."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.members: dict[int, float] = {}
        self.final: dict[str, Any] | None = None
        with contextlib.suppress(psutil.Error):  # the phase process itself (interrupted runs)
            self.members[pid] = psutil.Process(pid).create_time()

    def remember(self) -> None:
        try:
            for child in psutil.Process(self.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.members.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass

    def kill_survivors(self) -> None:
        survivors = []
        for pid, created in self.members.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() == created:  # not a recycled pid
                    process.kill()
                    survivors.append(process)
            except psutil.Error:
                continue
        psutil.wait_procs(survivors, timeout=5)


def _read_events(process: subprocess.Popen[bytes], events: queue.Queue[dict[str, Any] | None]) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.put(event)
    events.put(None)


def _html_export(executed: Path, target: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(str(executed), as_version=4)  # type: ignore[no-untyped-call]
    exporter = HTMLExporter(embed_images=True)  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(notebook)
    target.write_text(body, encoding="utf-8")


class RunnerLogWatch:
    """Reads a live runner's log (``--runner-log``) as it grows, for the lines a runner's end leaves there."""

    ENDINGS = ("Finished server process", "Fatal Python error", "Segmentation fault", "Illegal instruction")
    """uvicorn's last line on a clean stop; what faulthandler and a shell write for a native crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.is_file() else 0  # what was there before this run
        self._partial = b""

    def ended(self) -> str | None:
        """``"logged its end: <line>"`` once such a line was written since the run started, else None."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except OSError:
            return None
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace")
            if any(marker in text for marker in self.ENDINGS):
                return f"logged its end ({self.path.name}: {text.strip()[:200]})"
        return None


class Run:
    """One execution of a plan (see the module docstring)."""

    def __init__(self, options: RunOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console(stderr=True)
        self.plan: Plan = load_plan(resolve_plan(options.plan_path))
        self.kernel = options.kernel or self.plan.kernel
        self.selected = self.plan.select(options.phases)
        self.run_id = options.run_id or new_run_id()
        # Absolute: phase processes and kernels run with the run folder as their working directory.
        self.run_dir = (options.out_dir / self.run_id).resolve()
        self.runner: EmbeddedRunner | ServiceRunner | None = None
        self.supervisor: WorkerSupervisor | None = None
        self.runner_url = options.runner_url or ""
        self.env: dict[str, str] = dict(os.environ)
        self.env.pop(PINNED_KEYS_ENV, None)
        if options.pins is not None:
            self.env[PINNED_KEYS_ENV] = options.pins.to_env()
        self.phase_runs: list[PhaseRun] = []
        self.runner_exit: dict[str, Any] | None = None
        """How the runner under test ended during the run (``how``, ``phase``), if it did."""
        self._current_phase: str | None = None
        self._runner_log_watch: RunnerLogWatch | None = None
        self._html_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beacon-html")
        self._html_jobs: list[Future[None]] = []
        self.served: dict[str, Served] = {}
        self.served_rows: list[dict[str, Any]] = []
        self.served_error: str | None = None

    # --- preparation -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything that can be refused before a runner starts: kernel, notebooks, parameters."""
        require_kernel(self.kernel)
        problems = self.plan.validate_notebooks(self.selected)
        if problems:
            raise PlanError("the plan and its notebooks disagree:\n  " + "\n  ".join(problems))
        overrides = dict(self.options.parameters)
        if self.options.live:
            overrides.setdefault("live", True)
        common, per_phase = split_overrides(overrides, self.plan)
        for name in common:
            if name not in self.plan.parameters and not any(name in p.parameters for p in self.selected):
                raise PlanError(f"unknown parameter {name!r}")
            if name in INJECTED:
                raise PlanError(f"parameter {name!r} is set by the harness (use --runner / --runner-log)")
        for phase in self.selected:
            specs = self.plan.parameter_specs(phase)
            values = {k: v for k, v in common.items() if k in specs}
            values.update(per_phase.get(phase.id, {}))
            placeholders = {name: "" for name in INJECTED if name in specs}
            resolved = self.plan.resolve_parameters(phase, {**values, **placeholders})
            self.phase_runs.append(PhaseRun(phase, resolved, notebook=str(phase.notebook)))

    def _inject(self, run: PhaseRun) -> dict[str, Any]:
        specs = self.plan.parameter_specs(run.spec)
        runner_log = ""
        if self.runner is not None:
            runner_log = str(self.runner.log_path)
        elif self.options.runner_log_path is not None:
            runner_log = str(self.options.runner_log_path.resolve())
        values = {
            "runner_url": self.runner_url,
            "results_path": str((self.run_dir / "results" / f"{slug(run.spec.id)}.json").resolve()),
            "runner_log_path": runner_log,
            "plan_path": str((self.run_dir / "inputs" / "plan.yaml").resolve()),
            "monitor_path": str((self.run_dir / "monitor.jsonl").resolve()),
            "run_id": self.run_id,
        }
        run.parameters.update({k: v for k, v in values.items() if k in specs})
        return run.parameters

    def _copy_inputs(self) -> None:
        inputs = self.run_dir / "inputs"
        (inputs / "notebooks").mkdir(parents=True, exist_ok=True)
        assert self.plan.path is not None  # load_plan sets it
        shutil.copyfile(self.plan.path, inputs / "plan.yaml")
        for run in self.phase_runs:
            source = self.plan.notebook_path(run.spec)
            shutil.copyfile(source, inputs / "notebooks" / source.name)

    # --- the run ---------------------------------------------------------------------------------
    def execute(self) -> RunOutcome:
        started = time.time()
        self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=False)
        self._copy_inputs()
        monitor: RunMonitor | None = None
        executor: PhaseExecutor | None = None
        try:
            if not self.runner_url:
                self._provision_embedded_runner()
            executor = PhaseExecutor(
                self.run_dir, self.kernel, self.env, self.options.kernel_grace_s, prewarm=self.options.prewarm
            )
            executor.warm_up()  # the first phase's kernel starts while the runner does
            if self.runner is not None:
                self._start_embedded_runner()
            elif self.options.runner_log_path is not None:
                self._runner_log_watch = RunnerLogWatch(self.options.runner_log_path)
            operator_env = self._common("operator_token_env", "OPERATOR_TOKEN")
            monitor = RunMonitor(
                self.runner_url,
                self.run_dir / "monitor.jsonl",
                interval_s=self.options.monitor_interval_s,
                operator_token=self.env.get(operator_env) or None,
            )
            monitor.start()
            self._run_phases(executor)
            executor.close()
            monitor.stop()
            monitor = None
            for job in self._html_jobs:
                job.result()
            self._snapshot_runner_log()
            self._record_served()
            summary = self._summarise(started)
            write_json_atomic(self.run_dir / "summary.json", summary)
            if self.options.attest:
                self._attest(summary)
        finally:
            if executor is not None:
                executor.close()
            if monitor is not None:
                monitor.stop()
            self._html_pool.shutdown(wait=True)
            self._stop_embedded_runner()
        from beacon.harness.report import render_report

        render_report(self.run_dir)
        return RunOutcome(self.run_dir, summary)

    def _provision_embedded_runner(self) -> None:
        """Tokens and a trusted signing key for the runner the harness starts, exported to the phases'
        environment (with the worker supervisor's address in the service topology)."""
        if self.options.topology == "service":
            service = ServiceRunner(
                self.run_dir / "logs",
                database_url=self.options.database_url,
                redis_url=self.options.redis_url,
                extra_env={**self.plan.runner_settings, **self.options.runner_env},
            )
            self.supervisor = WorkerSupervisor(service)
            self.env.update(self.supervisor.env())
            self.runner = service
        else:
            self.runner = EmbeddedRunner(extra_env={**self.plan.runner_settings, **self.options.runner_env})
        credentials = self.runner.provision()
        names = {
            "admin": self._common("admin_token_env", "ADMIN_TOKEN"),
            "operator": self._common("operator_token_env", "OPERATOR_TOKEN"),
            "viewer": self._common("viewer_token_env", "VIEWER_TOKEN"),
            "signing_key": self._common("signing_key_env", "BEACON_SIGNING_KEY_FILE"),
        }
        self.env.update(credentials.env(names))

    def _start_embedded_runner(self) -> None:
        assert self.runner is not None
        if isinstance(self.runner, ServiceRunner):
            what = "beacon serve + a worker per region on PostgreSQL and Redis"
        else:
            what = "the embedded runner (US, EU, ASIA on SQLite)"
        with self.console.status(f"starting {what}…"):
            self.runner.start()
        self.runner_url = self.runner.url
        self.console.print(
            f"{self.options.topology} runner at {self.runner_url} (pid {self.runner.pid}, log {self.runner.log_path})"
        )
        if isinstance(self.runner, ServiceRunner):
            workers = ", ".join(f"{w.region} pid {w.pid}" for w in self.runner.workers.values())
            self.console.print(f"workers: {workers}; database {self.runner.describe()['database']}")

    def _runner_gone(self) -> str | None:
        """How the runner under test ended, if it has: the embedded runner's exit status or signal, or (a live
        runner with ``--runner-log``) the end its log records. Checked twice a second while a phase runs."""
        if self.runner_exit is not None:
            return str(self.runner_exit["how"])
        how = None
        if self.runner is not None and self.runner.process is not None:
            returncode = self.runner.process.poll()
            if returncode is not None:
                how = f"({self.options.topology}, pid {self.runner.process.pid}) {describe_exit(returncode)}"
        elif self._runner_log_watch is not None:
            how = self._runner_log_watch.ended()
        if how is not None:
            self.runner_exit = {"how": how, "phase": self._current_phase}
            self.console.print(f"[red]the runner under test {how}[/]")
        return how

    def _common(self, name: str, fallback: str) -> str:
        """A plan-wide parameter's value as resolved for this run (token variable names …)."""
        for run in self.phase_runs:
            if name in run.parameters:
                return str(run.parameters[name] or fallback)
        spec = self.plan.parameters.get(name)
        return str(spec.default if spec and spec.default else fallback)

    def _snapshot_runner_log(self) -> None:
        if isinstance(self.runner, ServiceRunner):  # its processes log into logs/ already
            return
        if self.runner is not None and self.runner.log_path.is_file():
            (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.runner.log_path, self.run_dir / "logs" / "runner.log")

    def _record_served(self) -> None:
        """What served each component, from the runner's /health and its workers' backend status."""
        from beacon.client import BeaconClient

        regions = list(self._common_value("regions", ["US", "EU", "ASIA"]))
        token = self.env.get(self._common("operator_token_env", "OPERATOR_TOKEN")) or None
        health: dict[str, Any] | None = None
        workers: list[dict[str, Any]] | None = None
        problems = []
        try:
            with BeaconClient(self.runner_url, token=token, timeout=10.0) as client:
                try:
                    health = client.request("GET", "/health").json()
                except Exception as exc:  # a dead runner: nothing is known to have served
                    problems.append(f"/health: {type(exc).__name__}: {exc}")
                try:
                    workers = list(client.workers()["workers"])
                except Exception as exc:
                    problems.append(f"workers: {type(exc).__name__}: {exc}")
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
        self.served = served_components(health, workers, regions)
        self.served_rows = served_rows(self.served, workers, regions)
        self.served_error = "; ".join(problems) or None

    def _common_value(self, name: str, fallback: Any) -> Any:
        for run in self.phase_runs:
            if name in run.parameters:
                return run.parameters[name]
        spec = self.plan.parameters.get(name)
        return spec.default if spec and spec.default is not None else fallback

    def _stop_embedded_runner(self) -> None:
        if self.supervisor is not None:
            self.supervisor.close()
            self.supervisor = None
        if self.runner is not None:
            self.runner.stop()

    def _run_phases(self, executor: PhaseExecutor) -> None:
        notebooks = self.run_dir / "notebooks"
        notebooks.mkdir(parents=True, exist_ok=True)
        halted = False
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            for number, run in enumerate(self.phase_runs, start=1):
                label = f"{run.spec.id:<10} {run.spec.title[:38]:<38}"
                if self.runner_exit is not None or self._runner_gone() is not None:
                    assert self.runner_exit is not None
                    run.status = "skipped"
                    run.error = {
                        "kind": "runner_exited",
                        "message": f"not run: the runner under test {self.runner_exit['how']} "
                        f"(during {self.runner_exit['phase'] or 'the start of the run'})",
                    }
                    progress.add_task(f"[dim]{label}[/]", total=1, completed=0, note="[red]runner gone[/]")
                    continue
                if halted:
                    run.status = "skipped"
                    run.error = {
                        "kind": "fail_fast",
                        "message": "not run: an earlier phase failed (--fail-fast)",
                    }
                    progress.add_task(f"[dim]{label}[/]", total=1, completed=0, note="[dim]skipped[/]")
                    continue
                task = progress.add_task(label, total=None, note="")
                self._run_phase(executor, run, number, notebooks, progress, task)
                colour = {"passed": "green", "failed": "red", "error": "red"}.get(run.status, "yellow")
                failed = run.accounting.get("failed", []) + run.accounting.get("missing", [])
                note = f"[{colour}]{run.status}[/]" + (f" ({', '.join(failed[:3])})" if failed else "")
                if run.error:
                    note += f" [{colour}]{run.error['kind']}[/]"
                progress.update(task, note=note)
                progress.stop_task(task)
                if self.options.fail_fast and run.status != "passed":
                    halted = True
                    executor.close()

    def _run_phase(
        self,
        executor: PhaseExecutor,
        run: PhaseRun,
        number: int,
        notebooks: Path,
        progress: Progress,
        task: Any,
    ) -> None:
        parameters = self._inject(run)
        input_path = self.plan.notebook_path(run.spec)
        stem = f"{number:02d}-{slug(run.spec.id)}"
        output_path = notebooks / f"{stem}.ipynb"
        results_path = Path(
            parameters.get("results_path") or self.run_dir / "results" / f"{slug(run.spec.id)}.json"
        )
        run.results = _rel(results_path, self.run_dir)
        run.log = f"logs/{slug(run.spec.id)}.log"

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "start":
                progress.update(task, total=event["cells"], completed=0)
            elif event.get("event") == "cell" and event.get("state") == "done":
                progress.advance(task)

        run.started_at = time.time()
        self._current_phase = run.spec.id
        final = executor.run(
            run.spec,
            input_path,
            output_path,
            parameters,
            on_event,
            more_to_come=number < len(self.phase_runs),
            runner_gone=self._runner_gone,
        )
        run.finished_at = time.time()
        if final.get("outcome") == "ok" and self._runner_gone() is not None:
            assert self.runner_exit is not None
            final = {
                "outcome": "runner_exited",
                "evalue": f"the runner under test {self.runner_exit['how']} during this phase",
            }
        if output_path.is_file():
            run.executed = _rel(output_path, self.run_dir)
            run.cells = cell_timings(output_path)
            if self.options.html:
                html_path = output_path.with_suffix(".html")
                run.html = _rel(html_path, self.run_dir)
                self._html_jobs.append(self._html_pool.submit(_html_export, output_path, html_path))
        try:
            run.document = load_phase_results(results_path)
        except ValueError:
            run.document = None
        run.accounting = phase_check_status(run.spec, run.document)
        outcome = final.get("outcome")
        if outcome != "ok":
            run.status = "error"
            run.error = {
                "kind": outcome,
                "message": " ".join(str(final.get(k) or "") for k in ("ename", "evalue")).strip(),
                "cell_index": final.get("cell_index"),
            }
        elif run.document is None or run.document.get("status") != "completed":
            run.status = "error"
            run.error = {
                "kind": "no_results",
                "message": "the notebook ended without finishing its phase results",
            }
        elif run.accounting["missing"] or run.accounting["failed"]:
            run.status = "failed"
        else:
            run.status = "passed"

    # --- after the phases ------------------------------------------------------------------------
    def _summarise(self, started: float) -> dict[str, Any]:
        documents = {run.spec.id: run.document for run in self.phase_runs if run.document is not None}
        ran = {run.spec.id for run in self.phase_runs if run.status != "skipped"}
        criteria = evaluate_criteria(self.plan, documents, ran, self.served)
        phases_failed = (
            any(run.status not in ("passed", "skipped") for run in self.phase_runs)
            or self.runner_exit is not None
        )
        status, exit_code = run_verdict(criteria, phases_failed, require_all=self.options.require_all)
        finished = time.time()
        return {
            "schema": SUMMARY_SCHEMA,
            "run_id": self.run_id,
            "beacon_version": __version__,
            "started_at": started,
            "finished_at": finished,
            "duration_s": finished - started,
            "target_duration_s": self.plan.target_duration_s,
            "inference_target_s": self.plan.inference_target_s,
            "plan": {
                "name": self.plan.name,
                "title": self.plan.title,
                "source": self.plan.source,
                "path": "inputs/plan.yaml",
                "selected": [run.spec.id for run in self.phase_runs],
                "all_phases": [p.id for p in self.plan.phases],
            },
            "runner": {
                "url": self.runner_url,
                "embedded": isinstance(self.runner, EmbeddedRunner),
                "topology": self.options.topology if self.runner is not None else "live",
                "log": "logs/runner.log" if self.runner is not None else None,
                "exited": self.runner_exit,
                **(self.runner.describe() if isinstance(self.runner, ServiceRunner) else {}),
            },
            "kernel": self.kernel,
            "host": _host_facts(),
            "phases": [run.to_json() for run in self.phase_runs],
            "criteria": criteria,
            "manual": [item.model_dump() for item in self.plan.manual],
            "monitor": "monitor.jsonl",
            "served_by": {name: fact.to_json() for name, fact in self.served.items()},
            "served_regions": self.served_rows,
            "served_error": self.served_error,
            "live": self.options.live,
            "trust": {
                "mode": "pinned" if self.options.pins else "trust_on_first_use",
                "pins": {
                    "runner": list(self.options.pins.runner),
                    "log": list(self.options.pins.log),
                    "source": self.options.pins.source,
                }
                if self.options.pins
                else None,
            },
            "require_all": self.options.require_all,
            "status": status.split(" ", 1)[0],
            "status_line": status,
            "exit_code": exit_code,
        }

    def _attest(self, summary: dict[str, Any]) -> None:
        from beacon.harness.attest import attest_run

        token = self.env.get(self._common("operator_token_env", "OPERATOR_TOKEN")) or self.env.get(
            self._common("admin_token_env", "ADMIN_TOKEN")
        )
        try:
            attest_run(self.run_dir, self.runner_url, token)
        except Exception as exc:  # the report must still be written; the failure is recorded in it
            write_json_atomic(
                self.run_dir / "attestation-error.json",
                {"error": f"{type(exc).__name__}: {exc}", "runner_url": self.runner_url, "at": time.time()},
            )
            self.console.print(f"[yellow]self-attestation failed: {exc}[/]")


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _host_facts() -> dict[str, Any]:
    """The harness machine, in the receipts' shape (CPU, RAM, GPU, OS), plus its name."""
    import platform

    from beacon.receipts import host_facts

    return {"hostname": platform.node(), **host_facts()}


def run_plan(options: RunOptions, console: Console | None = None) -> RunOutcome:
    """Run a plan (see :class:`Run`); PlanError/HarnessError for a run that cannot start."""
    return Run(options, console).execute()
