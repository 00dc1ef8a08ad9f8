"""The judging functions the phase notebooks call: each passes on evidence, fails on the fault it
names, and is *not exercised* on nothing or on a substitute."""

from __future__ import annotations

import json
from typing import Any

from beacon.harness import checks
from beacon.harness.components import served_components
from beacon.harness.results import PhaseResults


def verdict(results: PhaseResults, check_id: str) -> str:
    found = results.get_check(check_id)
    assert found is not None, f"{check_id} not recorded"
    return str(found["status"])


def worker(region: str, backend: str = "llamacpp", *, live: bool = True, **status: Any) -> dict[str, Any]:
    return {
        "id": f"{region.lower()}-1",
        "region": region,
        "backend": backend,
        "state": "running",
        "live": live,
        "heartbeat_age_s": 0.5 if live else 30.0,
        "hostname": "h",
        "backend_status": {"backend": backend, "ready": True, **status},
    }


REGIONS = ["US", "EU"]


def test_workers_per_region_fails_on_a_silent_worker() -> None:
    results = PhaseResults(None, "t-60")
    assert checks.judge_workers_per_region(results, [worker("US"), worker("EU")], REGIONS)
    assert not checks.judge_workers_per_region(results, [worker("US"), worker("EU", live=False)], REGIONS)
    record = results.get_check("workers_per_region")
    assert record is not None and "EU" in record["detail"] and "lost" in record["detail"]


def test_backends_real_llamacpp_is_not_exercised_and_fails_live() -> None:
    workers = [worker("US"), worker("EU", "ollama")]
    served = served_components(None, workers, REGIONS)["backend"]
    results = PhaseResults(None, "t-60")
    checks.judge_backends_real(results, served, workers, REGIONS, live=False)
    assert verdict(results, "backends_real") == "not_exercised"
    assert not checks.judge_backends_real(results, served, workers, REGIONS, live=True)
    real = [worker("US", "golem"), worker("EU", "ollama")]
    checks.judge_backends_real(
        results, served_components(None, real, REGIONS)["backend"], real, REGIONS, live=True
    )
    assert verdict(results, "backends_real") == "pass"


def test_gpu_acceleration_from_the_workers_own_status() -> None:
    cpu = [
        worker("US", gpu_offload=False, host_facts={"gpu": None}),
        worker("EU", "ollama", loaded_vram={"m": 0}),
    ]
    results = PhaseResults(None, "t-60")
    checks.judge_gpu_acceleration(results, cpu, REGIONS, require_gpu=False)
    assert verdict(results, "gpu_acceleration") == "not_exercised"
    assert not checks.judge_gpu_acceleration(results, cpu, REGIONS, require_gpu=True)
    nothing_loaded = [worker("EU", "ollama", loaded_vram={})]
    assert not checks.judge_gpu_acceleration(results, nothing_loaded, ["EU"], require_gpu=True)  # no evidence
    gpu = [
        worker("US", gpu_offload=True, n_gpu_layers=-1, host_facts={"gpu": [{"name": "H200"}]}),
        worker("EU", "ollama", loaded_vram={"m": 1 << 30}),
    ]
    assert checks.judge_gpu_acceleration(results, gpu, REGIONS, require_gpu=True)
    assert verdict(results, "gpu_acceleration") == "pass"


def test_ollama_models_are_those_the_runner_uses_and_live_wants_the_plans_three() -> None:
    def ollama(*tags: str) -> dict[str, Any]:
        return worker(
            "EU",
            "ollama",
            host="http://gpu:11434",
            models={t: {"tag": t, "digest": "sha256:x"} for t in tags},
        )

    results = PhaseResults(None, "t-60")
    assert not checks.judge_ollama_models(results, [ollama("llama3.2:1b")], [], local=None, live=True)
    assert checks.judge_ollama_models(
        results, [ollama("llama3.2:1b", "qwen2.5:1.5b", "mistral:7b")], [], local=None, live=True
    )
    assert verdict(results, "ollama_models") == "pass"
    checks.judge_ollama_models(results, [worker("EU")], [], local=None, live=False)
    assert verdict(results, "ollama_models") == "not_exercised"
    assert not checks.judge_ollama_models(results, [worker("EU")], [], local=None, live=True)


def test_golem_provider_needs_identity_payment_and_balance() -> None:
    results = PhaseResults(None, "t-60")
    checks.judge_golem_provider(results, [worker("US")], ["US"], live=False)
    assert verdict(results, "golem_provider") == "not_exercised"
    assert not checks.judge_golem_provider(results, [worker("US")], ["US"], live=True)
    unfunded = worker("US", "golem", reachable=True, payment_account=True, requestor="0xabc")
    assert not checks.judge_golem_provider(results, [unfunded], ["US"], live=False)
    record = results.get_check("golem_provider")
    assert record is not None and "glm_balance not reported" in record["detail"]
    funded = worker(
        "US", "golem", reachable=True, payment_account=True, requestor="0xabc", glm_balance="1000.0"
    )
    assert checks.judge_golem_provider(results, [funded], ["US"], live=True)
    assert verdict(results, "golem_provider") == "pass"


def test_components_on_substitutes_are_not_exercised() -> None:
    health = {
        "components": {
            "queue": {"status": "up", "kind": "inprocess"},
            "database": {"status": "up", "dialect": "sqlite"},
        }
    }
    served = served_components(health, None, REGIONS)
    results = PhaseResults(None, "t-30")
    checks.judge_component(results, "queue_health", health, "queue", served["queue"])
    assert verdict(results, "queue_health") == "not_exercised"
    real = {
        "components": {
            "queue": {"status": "up", "kind": "redis"},
            "database": {"status": "down", "dialect": "postgresql"},
        }
    }
    served = served_components(real, None, REGIONS)
    checks.judge_component(results, "queue_health", real, "queue", served["queue"])
    assert verdict(results, "queue_health") == "pass"
    assert not checks.judge_component(results, "database_connectivity", real, "database", served["database"])


def test_gpu_samples_without_gpu_columns_are_not_exercised() -> None:
    results = PhaseResults(None, "t-30")
    checks.judge_samples(results, "gpu_monitoring", [{"cpu_percent": 1.0}] * 3, minimum=3)
    assert verdict(results, "gpu_monitoring") == "not_exercised"
    assert not checks.judge_samples(
        results, "gpu_monitoring", [{"cpu_percent": 1.0, "gpu0_util_percent": 5}], minimum=3
    )
    checks.judge_samples(results, "gpu_monitoring", [{"gpu0_util_percent": 5}] * 3, minimum=3)
    assert verdict(results, "gpu_monitoring") == "pass"


def test_list_reads_need_items_with_the_portals_fields() -> None:
    results = PhaseResults(None, "cors")
    checks.judge_list_read(results, "diffs_structure", 200, {"diffs": []}, "diffs")
    assert verdict(results, "diffs_structure") == "not_exercised"
    assert not checks.judge_list_read(
        results, "executions_structure", 200, {"executions": [{"id": "e"}]}, "executions"
    )
    assert not checks.judge_list_read(results, "jobs_list_structure", 500, {"detail": "boom"}, "jobs")
    item = {"id": "e", "job_id": "j", "region": "US", "model": "m", "status": "completed"}
    assert checks.judge_list_read(results, "executions_structure", 200, {"executions": [item]}, "executions")
    assert verdict(results, "executions_structure") == "pass"


def executions(latencies: dict[tuple[str, str], list[float]]) -> list[dict[str, Any]]:
    return [
        {"region": r, "model": m, "status": "completed", "latency_s": v}
        for (r, m), values in latencies.items()
        for v in values
    ]


def test_sub_2s_is_p95_on_every_region_and_model_with_the_share_reported() -> None:
    fast = [0.5] * 19
    slow_tail = [0.5] * 17 + [2.5, 3.0]  # median 0.5 s, p95 over 2 s
    rows = executions({("US", "a"): fast, ("EU", "a"): slow_tail})
    results = PhaseResults(None, "t+15")
    assert not checks.judge_inference_latency(results, rows, REGIONS, ["a"], 2.0, on_gpu=True)
    record = results.get_check("inference_latency_under_target")
    assert record is not None and "EU/a p95" in record["detail"] and "% overall" in record["detail"]
    assert checks.judge_inference_latency(results, rows, REGIONS, ["a"], 2.0, quantile=0.5, on_gpu=True)
    assert not checks.judge_inference_latency(
        results, rows, REGIONS, ["a", "b"], 2.0, on_gpu=True
    )  # no b at all
    shares = {
        (m["tags"]["region"]): m["value"]
        for m in results.doc["measurements"]
        if m["name"] == "inference_share_under_target"
    }
    assert shares["US"] == 1.0 and round(shares["EU"], 3) == round(17 / 19, 3)
    checks.judge_inference_latency(
        results, executions({("US", "a"): fast, ("EU", "a"): fast}), REGIONS, ["a"], 2.0, on_gpu=False
    )
    assert (
        verdict(results, "inference_latency_under_target") == "not_exercised"
    )  # the CPU is not the GPU target
    checks.judge_inference_latency(results, [], REGIONS, ["a"], 2.0, on_gpu=True)
    assert verdict(results, "inference_latency_under_target") == "not_exercised"


def call(status: int, request_id: str, code: str | None = None) -> dict[str, Any]:
    return {
        "method": "POST",
        "route": "/api/v1/jobs",
        "status": status,
        "request_id": request_id,
        "code": code,
    }


def test_no_unexpected_5xx_excepts_deliberate_requests_by_id_and_needs_calls() -> None:
    results = PhaseResults(None, "t+60")
    checks.judge_no_unexpected_5xx(results, {}, [])
    assert verdict(results, "no_unexpected_5xx") == "not_exercised"  # 0 calls examined
    paused = {
        "calls": [call(503, "r1", "submissions_paused")],
        "deliberate": [{"request_id": "r1", "reason": "drill"}],
    }
    assert checks.judge_no_unexpected_5xx(results, {"emergency": paused}, [])
    assert verdict(results, "no_unexpected_5xx") == "pass"
    # the same code on a request nobody made on purpose is an app fault
    accidental = {
        "calls": [call(503, "r2", "submissions_paused")],
        "deliberate": [{"request_id": "r1", "reason": "drill"}],
    }
    assert not checks.judge_no_unexpected_5xx(results, {"emergency": accidental}, [])
    assert not checks.judge_no_unexpected_5xx(
        results, {"t-0": {"calls": [call(200, "r3")]}}, [{"health": {"http_status": 503}}]
    )


def log_line(level: str, message: str, request_id: str | None = None) -> str:
    return json.dumps(
        {"level": level, "message": message, **({"request_id": request_id} if request_id else {})}
    )


def test_runner_log_clean_ignores_exactly_the_deliberate_request_ids_at_any_level() -> None:
    documents = {"t-15": {"deliberate": [{"request_id": "r1", "reason": "unsigned"}]}}
    log = "\n".join(
        [
            log_line("INFO", "started"),
            log_line("ERROR", "503 submissions_paused", "r1"),  # deliberate, even at ERROR
            log_line("WARNING", "400 signature_missing", "r1"),
        ]
    )
    results = PhaseResults(None, "t+60")
    assert checks.judge_runner_log_clean(results, log, documents)
    assert not checks.judge_runner_log_clean(results, log + "\n" + log_line("ERROR", "boom", "r9"), documents)
    assert not checks.judge_runner_log_clean(results, log + "\nTraceback (most recent call last):", documents)
    checks.judge_runner_log_clean(results, None, documents)
    assert verdict(results, "runner_log_clean") == "not_exercised"


def failed(phase: str, check_id: str) -> dict[str, Any]:
    return {"checks": [{"id": check_id, "status": "fail", "expected": 1, "actual": 2, "detail": None}]}


def test_findings_and_next_steps_are_derived_and_checked() -> None:
    documents = {
        "t-0": failed("t-0", "job_completed"),
        "t-60": {"checks": [{"id": "gpu", "status": "not_exercised", "detail": "CPU"}]},
    }
    criteria = [{"id": "sub_2s", "title": "GPU sub-2s", "status": "not_exercised", "not_exercised": ["GPU"]}]
    results = PhaseResults(None, "t+60")
    findings = checks.summarise_findings(documents, "t+60")
    assert checks.judge_findings(results, documents, findings, "t+60")
    assert not checks.judge_findings(results, documents, findings[:1], "t+60")  # a failure left unsummarised
    steps = checks.next_steps(documents, criteria, "t+60")
    assert steps == ["fix t-0/job_completed", "exercise 'GPU sub-2s' on GPU", "exercise t-60/gpu (CPU)"]
    assert checks.judge_next_steps(results, documents, criteria, steps, "t+60")
    premature = [checks.ALL_PASSED]
    assert not checks.judge_next_steps(results, documents, criteria, premature, "t+60")
    # a not-exercised check alone (no criterion lacking) still forbids "schedule the live run"
    assert not checks.judge_next_steps(results, documents, [], ["fix t-0/job_completed", *premature], "t+60")
    assert checks.ALL_PASSED not in checks.next_steps(documents, [], "t+60")
    # a phase of the plan that left no results is a step, and so is a failure of the wrap-up itself
    own = {"checks": [{"id": "no_unexpected_5xx", "status": "fail"}]}
    steps = checks.next_steps({"t-60": {"checks": []}}, [], "t+60", own=own, phases=["t-60", "t-0", "t+60"])
    assert steps == ["fix t+60/no_unexpected_5xx", "run phase t-0"]
    assert checks.next_steps({}, [], "t+60") == [
        "run the earlier phases: this run folder holds none of their results"
    ]
    checks.judge_findings(results, {}, [], "t+60")
    assert verdict(results, "findings_summarised") == "not_exercised"


def test_live_mode_turns_substitutes_into_failures() -> None:
    health = {"components": {"queue": {"status": "up", "kind": "inprocess"}}}
    served = served_components(health, None, REGIONS)
    results = PhaseResults(None, "t-30")
    assert not checks.judge_component(results, "queue_health", health, "queue", served["queue"], live=True)
    record = results.get_check("queue_health")
    assert record is not None and "served by inprocess" in record["detail"]
    rows = executions({("US", "a"): [0.5] * 5})
    assert not checks.judge_inference_latency(
        results, rows, ["US"], ["a"], 2.0, on_gpu=False, require_gpu=True
    )
