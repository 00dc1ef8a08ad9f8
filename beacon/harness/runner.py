"""Running a plan: every phase notebook through papermill, in order, into ``reports/<run-id>/``.

For each phase: parameters are resolved and validated (all phases, before the first one starts),
the notebook runs in a child process (:mod:`beacon.harness.phase_executor`) on the pinned ``beacon``
kernel with a wall-clock budget; a hang or a dead kernel becomes a failed phase and the run goes
on (unless ``fail_fast``). Without a runner URL an embedded runner is started for the run and
stopped at the end. Then: success criteria and ``summary.json`` (:mod:`beacon.harness.summary`),
HTML copies of the executed notebooks, the self-attestation, and ``index.html``. This module is the
orchestration: the order of things, the progress display, and what ends a run.

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

import os
import secrets
import shutil
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from beacon.harness.components import Served, served_components, served_rows
from beacon.harness.criteria import phase_check_status
from beacon.harness.launcher import EmbeddedRunner
from beacon.harness.phase_executor import KERNEL_GRACE_S, PhaseExecutor
from beacon.harness.plan import (
    Plan,
    PlanError,
    load_plan,
    resolve_plan,
    slug,
    split_overrides,
)
from beacon.harness.results import load_phase_results, write_json_atomic
from beacon.harness.run_monitor import RunMonitor
from beacon.harness.summary import PhaseRun, build_summary, cell_timings
from beacon.harness.topology import ServiceRunner, WorkerSupervisor
from beacon.harness.trust import ENV as PINNED_KEYS_ENV
from beacon.harness.trust import PinnedKeys
from beacon.processes import describe_exit

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
        return build_summary(
            run_id=self.run_id,
            plan=self.plan,
            phase_runs=self.phase_runs,
            started=started,
            kernel=self.kernel,
            runner={
                "url": self.runner_url,
                "embedded": isinstance(self.runner, EmbeddedRunner),
                "topology": self.options.topology if self.runner is not None else "live",
                "log": "logs/runner.log" if self.runner is not None else None,
                "exited": self.runner_exit,
                **(self.runner.describe() if isinstance(self.runner, ServiceRunner) else {}),
            },
            served=self.served,
            served_rows=self.served_rows,
            served_error=self.served_error,
            live=self.options.live,
            pins=self.options.pins,
            require_all=self.options.require_all,
        )

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


def run_plan(options: RunOptions, console: Console | None = None) -> RunOutcome:
    """Run a plan (see :class:`Run`); PlanError/HarnessError for a run that cannot start."""
    return Run(options, console).execute()
