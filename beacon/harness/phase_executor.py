"""Phase notebooks in child processes of their own, each under a wall-clock budget.

The parent side of :mod:`beacon.harness.execute`: a :class:`PhaseExecutor` starts one child per phase
(pre-warmed while the phase before it runs), relays its events, kills it with its kernel when the
budget or the runner under test runs out, and kills whatever the phase left behind.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from beacon.harness.launcher import kill_tree, log_tail
from beacon.harness.plan import PhaseSpec, slug
from beacon.harness.results import write_json_atomic

KERNEL_GRACE_S = 20.0
"""Added to a phase's timeout for starting and stopping its kernel."""


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
