"""The harness proven to fail: runners that misbehave on purpose, and the verdicts they must get.

Each case runs the real phase notebooks (``beacon.harness.runner``) — only the phases its fault
needs — against a runner that misbehaves in one way: a tampering proxy in front of one shared
embedded runner (tampered receipts, a forked log, 5xx on read routes, CORS headers missing …), or
an embedded runner with a failpoint (a relay that never publishes, a worker that never
heartbeats), an Ollama stand-in without a GPU under ``require_gpu``, a runner killed mid-run.
T+60's judgement (5xx and the runner's log) is made in-process with the functions its notebook
calls. Each case must fail exactly the success criteria its fault threatens (and, where no
criterion of the written plan covers the fault, the phase checks it threatens); the clean run fails
nothing. ``FAULT_MATRIX`` is the table the closing note shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from rich.console import Console

from beacon.client import BeaconClient
from beacon.harness.checks import judge_no_unexpected_5xx, judge_runner_log_clean
from beacon.harness.components import Served
from beacon.harness.criteria import evaluate_criteria
from beacon.harness.launcher import EmbeddedRunner
from beacon.harness.plan import load_plan
from beacon.harness.results import PhaseResults
from beacon.harness.run_monitor import read_monitor
from beacon.harness.runner import RunOptions, run_plan
from tests.harness import tampering_proxy as faults
from tests.harness.tampering_proxy import TamperingProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "test_plans" / "day1.yaml"
QUICK = {
    "t-0.benchmark": "noop",
    "t-0.job_timeout_s": 20.0,
    "t-0.sample_interval_s": 0.2,
    "t-15.rate_limit_probe": 2,
}
"""Parameters that keep each case short (no model time where the fault does not need it)."""


@dataclass
class Outcome:
    """One case's verdicts: failed criteria and failed checks (``phase/check``)."""

    criteria: dict[str, str]
    failed_checks: set[str]
    summary: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)
    """Every phase's results, T+60's in-process judgement included."""
    served: dict[str, Served] = field(default_factory=dict)

    @property
    def failed_criteria(self) -> set[str]:
        return {c for c, status in self.criteria.items() if status == "fail"}


def run_case(
    url: str, log_path: Path, out: Path, phases: list[str], parameters: dict[str, Any] | None = None
) -> Outcome:
    """The plan's ``phases`` against ``url``, then T+60's judgement in-process, then the criteria."""
    log_start = log_path.stat().st_size if log_path.is_file() else 0
    outcome = run_plan(
        RunOptions(
            plan_path=PLAN,
            runner_url=url,
            runner_log_path=log_path,
            phases=phases,
            out_dir=out,
            parameters={**QUICK, **(parameters or {})},
            attest=False,
            html=False,
            monitor_interval_s=0.5,
        ),
        Console(stderr=True, quiet=True),
    )
    summary = outcome.summary
    documents = {p["id"]: p["results"] for p in summary["phases"] if p["results"]}
    wrap_up = PhaseResults(None, "t+60")
    judge_no_unexpected_5xx(wrap_up, documents, read_monitor(outcome.run_dir / "monitor.jsonl"))
    with log_path.open("rb") as handle:  # this case's part of the runner's log only
        handle.seek(log_start)
        judge_runner_log_clean(wrap_up, handle.read().decode("utf-8", "replace"), documents)
    served = {
        name: Served(f["component"], f["label"], f["served_by"], f["detail"])
        for name, f in summary["served_by"].items()
    }
    plan = load_plan(PLAN)
    criteria = evaluate_criteria(plan, {**documents, "t+60": wrap_up.doc}, set(documents) | {"t+60"}, served)
    failed = {
        f"{phase}/{check['id']}"
        for phase, document in {**documents, "t+60": wrap_up.doc}.items()
        for check in document["checks"]
        if check["status"] == "fail"
    }
    failed |= {
        f"{p['id']}/{m}" for p in summary["phases"] for m in (p.get("accounting") or {}).get("missing", [])
    }
    return Outcome(
        {c["id"]: c["status"] for c in criteria},
        failed,
        summary,
        documents={**documents, "t+60": wrap_up.doc},
        served=served,
    )


def merged(first: Outcome, second: Outcome) -> Outcome:
    """Two runs against one runner judged as one: the criteria over both runs' phases (T+60's checks
    fail if either run's failed, pass if either passed)."""
    documents = {**first.documents, **second.documents}
    rank = {"fail": 0, "pass": 1, "not_exercised": 2}
    t60: dict[str, dict[str, Any]] = {}
    for outcome in (first, second):
        for check in outcome.documents["t+60"]["checks"]:
            known = t60.get(check["id"])
            if known is None or rank[check["status"]] < rank[known["status"]]:
                t60[check["id"]] = check
    documents["t+60"] = {"checks": list(t60.values())}
    criteria = evaluate_criteria(load_plan(PLAN), documents, set(documents), second.served)
    return Outcome(
        {c["id"]: c["status"] for c in criteria},
        first.failed_checks | second.failed_checks,
        first.summary,
        {"t+45": second},
        documents,
        second.served,
    )


# --- runners -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[EmbeddedRunner, TamperingProxy]]:
    """One embedded runner, behind one tampering proxy, for every proxy case."""
    with EmbeddedRunner() as runner:
        assert runner.credentials is not None
        with mock.patch.dict(os.environ, runner.credentials.env()), TamperingProxy(runner.url) as proxy:
            yield runner, proxy


@pytest.fixture(scope="module")
def clean_job(
    shared: tuple[EmbeddedRunner, TamperingProxy], tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    """The clean run (no fault) of the phases the proxy cases use; its T-0 job is the one the T+45
    cases verify. (The whole plan's clean run is tests/notebooks/test_notebooks.py.)"""
    runner, proxy = shared
    proxy.fault = None
    out = tmp_path_factory.mktemp("clean")
    # answers to compare: T+45 needs a difference report
    first = run_case(
        proxy.url, runner.log_path, out, ["t-15", "cors", "t-0"], {"t-0.benchmark": "who-are-you"}
    )
    job_ids = job_ids_of(first)
    with BeaconClient(runner.url) as client:  # the bundle is stored when the job is finalised, just after
        deadline = time.monotonic() + 60
        while not all(client.job(j).get("bundle_cid") for j in job_ids) and time.monotonic() < deadline:
            time.sleep(0.5)
    second = run_case(proxy.url, runner.log_path, out, ["t+45"], {"t+45.job_ids": job_ids})
    both = merged(first, second)
    both.extra["job_ids"] = job_ids
    return both


def job_ids_of(outcome: Outcome) -> list[str]:
    if "job_ids" in outcome.extra:
        return list(outcome.extra["job_ids"])
    t0 = next(p for p in outcome.summary["phases"] if p["id"] == "t-0")["results"]
    return sorted({row["job_id"] for row in t0["tables"]["executions"]})


@contextlib.contextmanager
def embedded(extra_env: dict[str, str]) -> Iterator[tuple[EmbeddedRunner, TamperingProxy]]:
    """A runner of its own (a failpoint, another backend), behind a faithful proxy."""
    with EmbeddedRunner(extra_env=extra_env) as runner:
        assert runner.credentials is not None
        with mock.patch.dict(os.environ, runner.credentials.env()), TamperingProxy(runner.url) as proxy:
            yield runner, proxy


@contextlib.contextmanager
def ollama_standin() -> Iterator[str]:
    """The Ollama stand-in (CPU only: every loaded model has ``size_vram`` 0) on loopback."""
    from beacon.standins.ollama import OllamaStandin

    loop = asyncio.new_event_loop()
    standin = OllamaStandin()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(standin.start(), loop).result(120)
    try:
        yield standin.url
    finally:
        asyncio.run_coroutine_threadsafe(standin.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


# --- the matrix ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    fault: str
    phases: list[str]
    threatens: set[str]
    """The success criteria that must fail (exactly these)."""
    checks: set[str]
    """Checks that must be among the failures."""
    only_phases: set[str] | None = None
    """Where no criterion covers the fault: every failed check is in one of these phases."""
    parameters: dict[str, Any] = field(default_factory=dict)


PROXY_CASES = {
    "tampered receipt signatures": (
        faults.tamper_receipt_signatures,
        # the log holds the receipt as issued: a receipt with other bytes is not included either
        Case(
            "tampered receipt signatures",
            ["t+45"],
            {"receipts_valid", "transparency_valid"},
            {"t+45/receipt_signatures_valid", "t+45/inclusion_proofs_valid"},
        ),
    ),
    "root not matching the checkpoints": (
        faults.root_not_matching,
        Case(
            "root not matching the checkpoints",
            ["t+45"],
            {"transparency_valid"},
            {"t+45/transparency_root_valid"},
        ),
    ),
    "5xx on read routes": (
        faults.server_errors_on("/api/v1/questions", "/api/v1/executions", "/admin/ops/queues"),
        Case(
            "5xx on read routes",
            ["t-30", "cors"],
            {"no_5xx"},
            {
                "t+60/no_unexpected_5xx",
                "cors/questions_structure",
                "cors/executions_structure",
                "t-30/queue_health",
            },
        ),
    ),
    "5xx on the backup route": (
        faults.server_errors_on("/admin/ops/backup", methods=("POST",)),
        Case(
            "5xx on the backup route",
            ["emergency"],
            {"no_5xx"},
            {"t+60/no_unexpected_5xx", "emergency/backup_created"},
            parameters={"emergency.stop_worker": False, "emergency.drain_timeout_s": 20.0},
        ),
    ),
    "CORS headers missing": (
        faults.strip_cors,
        Case(
            "CORS headers missing",
            ["cors"],
            set(),
            {"cors/preflight_allowed", "cors/portal_reads_cors"},
            only_phases={"cors"},
        ),
    ),
    "refusals not problem+json": (
        faults.refusals_not_problem_json,
        Case("refusals not problem+json", ["t-15"], {"predictable_4xx"}, {"t-15/problem_json"}),
    ),
}


def test_the_clean_run_fails_nothing(clean_job: Outcome) -> None:
    assert clean_job.failed_checks == set(), clean_job.failed_checks
    assert clean_job.failed_criteria == set()
    assert clean_job.summary["exit_code"] == 0 and clean_job.extra["t+45"].summary["exit_code"] == 0
    # what it cannot exercise here it says, with the component that served instead
    served = clean_job.summary["served_by"]
    assert served["database"]["served_by"] == "sqlite" and not served["database"]["exercised"]
    assert served["queue"]["served_by"] == "inprocess" and not served["queue"]["exercised"]
    assert served["backend"]["served_by"] == "llamacpp"
    assert clean_job.criteria["signed_job_per_region"] == "not_exercised"
    assert clean_job.criteria["receipts_valid"] == "pass"
    assert clean_job.criteria["predictable_4xx"] == "pass"


@pytest.mark.parametrize("name", list(PROXY_CASES))
def test_a_tampering_runner_fails_what_it_threatens(
    name: str, shared: tuple[EmbeddedRunner, TamperingProxy], clean_job: Outcome, tmp_path: Path
) -> None:
    fault, case = PROXY_CASES[name]
    runner, proxy = shared
    parameters = dict(case.parameters)
    if "t+45" in case.phases:
        parameters["t+45.job_ids"] = job_ids_of(clean_job)
    proxy.fault = fault
    try:
        outcome = run_case(proxy.url, runner.log_path, tmp_path, case.phases, parameters)
    finally:
        proxy.fault = None
    assert_case(case, outcome)


def test_a_forked_log_fails_transparency(
    shared: tuple[EmbeddedRunner, TamperingProxy], clean_job: Outcome, tmp_path: Path
) -> None:
    runner, proxy = shared
    assert runner.data_dir is not None
    case = Case("forked log", ["t+45"], {"transparency_valid"}, {"t+45/consistency_valid"})
    proxy.fault = faults.forked_checkpoints(runner.data_dir / "runner-key.json")
    try:
        outcome = run_case(
            proxy.url, runner.log_path, tmp_path, case.phases, {"t+45.job_ids": job_ids_of(clean_job)}
        )
    finally:
        proxy.fault = None
    assert_case(case, outcome)


def test_a_relay_that_never_publishes_fails_the_pipeline(tmp_path: Path) -> None:
    case = Case(
        "a relay that never publishes",
        ["t-0", "t+15"],
        {"signed_job_per_region", "receipts_valid", "queue_no_deadlocks"},
        {"t-0/job_completed", "t-0/receipts_present", "t+15/jobs_completed"},
        parameters={
            "t-0.job_timeout_s": 6.0,
            "t+15.job_timeout_s": 6.0,
            "t+15.jobs_count": 1,
            "t+15.benchmark": "noop",
        },
    )
    with embedded({"BEACON_FAILPOINTS": "relay.before_publish=sleep(3600)"}) as (runner, proxy):
        outcome = run_case(proxy.url, runner.log_path, tmp_path, case.phases, case.parameters)
    assert_case(case, outcome)


def test_a_worker_that_never_heartbeats_and_a_runner_that_dies(tmp_path: Path) -> None:
    silent = Case(
        "a worker that never heartbeats", ["t-60"], set(), {"t-60/workers_per_region"}, only_phases={"t-60"}
    )
    dies = Case(
        "a runner that dies mid-run",
        ["t-0"],
        {"signed_job_per_region", "receipts_valid"},
        {"t-0/job_completed"},
    )
    env = {
        "BEACON_FAILPOINTS": "worker.heartbeat=sleep(3600)",
        "BEACON_HEARTBEAT_SECONDS": "0.5",
        "BEACON_WORKER_LEASE_SECONDS": "1.5",
    }
    with embedded(env) as (runner, proxy):
        time.sleep(2.0)  # past the lease: the workers' only heartbeat was their registration
        assert_case(silent, run_case(proxy.url, runner.log_path, tmp_path / "silent", silent.phases))
        assert runner.pid is not None
        pid = runner.pid
        proxy.fault = faults.kill_after_submit(lambda: os.kill(pid, signal.SIGKILL))
        outcome = run_case(
            proxy.url, runner.log_path, tmp_path / "dies", dies.phases, {"t-0.job_timeout_s": 6.0}
        )
    assert_case(dies, outcome)
    assert outcome.summary["served_error"], "a dead runner cannot say what served it"


def test_an_ollama_host_without_gpu_fails_under_require_gpu(tmp_path: Path) -> None:
    case = Case(
        "an Ollama host without GPU, require_gpu",
        ["t-60"],
        {"sub_2s_inference"},
        {"t-60/gpu_acceleration"},
        parameters={"regions": ["EU"], "t-60.require_gpu": True},
    )
    with (
        ollama_standin() as url,
        embedded({"BEACON_REGION_BACKENDS": '{"EU": "ollama"}', "OLLAMA_HOST": url}) as (runner, proxy),
    ):
        outcome = run_case(proxy.url, runner.log_path, tmp_path, case.phases, case.parameters)
    assert_case(case, outcome)
    assert outcome.summary["served_by"]["backend"]["served_by"] == "ollama"


def assert_case(case: Case, outcome: Outcome) -> None:
    """Exactly the threatened criteria fail; the named checks are among the failures."""
    FAULT_MATRIX[case.fault] = (sorted(outcome.failed_criteria), sorted(outcome.failed_checks))
    assert outcome.failed_criteria == case.threatens, (
        case.fault,
        outcome.criteria,
        sorted(outcome.failed_checks),
    )
    assert case.checks <= outcome.failed_checks, (case.fault, sorted(outcome.failed_checks))
    if case.only_phases is not None:
        stray = {c for c in outcome.failed_checks if c.split("/")[0] not in case.only_phases}
        assert not stray, (case.fault, sorted(stray))
    assert outcome.summary["exit_code"] == 1 or not case.threatens


FAULT_MATRIX: dict[str, tuple[list[str], list[str]]] = {}
"""fault → (criteria that failed, checks that failed), filled as the cases run (printed at the end)."""


def test_every_phase_notebook_is_reached_by_a_failing_case() -> None:
    """Runs last: each phase of the plan (T+60 judged in-process) had a check failed by some fault."""
    if len(FAULT_MATRIX) < 8:
        pytest.skip("the fault cases did not all run (selected alone)")
    reached = {check.split("/")[0] for _, checks in FAULT_MATRIX.values() for check in checks}
    for fault, (criteria, checks) in FAULT_MATRIX.items():
        print(f"{fault}: criteria {criteria or '-'}; checks {checks}")
    phases = {"t-60", "t-30", "t-15", "cors", "t-0", "t+15", "t+45", "emergency", "t+60"}
    assert phases <= {p.id for p in load_plan(PLAN).phases}
    assert phases <= reached, sorted(phases - reached)
