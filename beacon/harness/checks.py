"""The judging half of the phase notebooks: data the notebook fetched in, a verdict recorded out.

Each ``judge_*`` function takes what a notebook read from the runner (plain JSON) and records one
check (or a few) in a :class:`~beacon.harness.results.PhaseResults`, with one of the three
verdicts. Keeping the judgement here — not in notebook cells — lets the fault matrix
(tests/harness/test_fault_matrix.py) prove that each check fails when the runner misbehaves, and
that none passes on nothing or on a substitute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from beacon.harness.components import (
    COMPONENTS,
    LIVE_MODELS,
    REAL_BACKENDS,
    Served,
    live_workers,
    region_backends,
    worker_uses_gpu,
)
from beacon.harness.results import NOT_EXERCISED, PhaseResults, verdict_of

# --- T-60: workers, backends, GPU, models, Golem ---------------------------------------------------


def judge_workers_per_region(
    results: PhaseResults, workers: Sequence[Mapping[str, Any]], regions: Sequence[str]
) -> bool:
    """``workers_per_region``: each target region has a running worker whose heartbeat is within its lease."""
    live = region_backends(workers, regions)
    missing = [r for r, backends in live.items() if not backends]
    silent = sorted(
        f"{w.get('id')} ({w.get('region')}, heartbeat {w.get('heartbeat_age_s')}s ago)"
        for w in workers
        if not w.get("live") and w.get("region") in regions
    )
    return results.check(
        "workers_per_region",
        expected=f"a live worker (heartbeat within its lease) in each of {list(regions)}",
        actual={r: b for r, b in live.items()},
        passed=not missing,
        detail="; ".join(
            ([f"no live worker in {missing}"] if missing else [])
            + ([f"lost: {', '.join(silent)}"] if silent else [])
        )
        or None,
        examined=len(regions),
        evidence={
            str(w.get("id")): {k: w.get(k) for k in ("region", "backend", "state", "live", "heartbeat_age_s")}
            for w in workers
        },
    )


def judge_backends_real(
    results: PhaseResults,
    served: Served,
    workers: Sequence[Mapping[str, Any]],
    regions: Sequence[str],
    *,
    live: bool,
) -> bool:
    """``backends_real``: every target region is served by Ollama or Golem (the embedded llama.cpp is a
    substitute: not exercised, and a failure in live mode)."""
    backends = region_backends(workers, regions)
    substitutes = {r: b for r, b in backends.items() if not b or any(x not in REAL_BACKENDS for x in b)}
    expected = "Ollama or Golem in every region"
    if substitutes and not live:
        results.not_exercised("backends_real", served.reason, evidence=backends, served_by=served.served_by)
        return True
    return results.check(
        "backends_real",
        expected=expected,
        actual=backends,
        passed=not substitutes,
        detail=f"live mode needs real backends; {substitutes} are not" if substitutes else None,
        examined=len(regions),
        served_by=served.served_by,
    )


def judge_gpu_acceleration(
    results: PhaseResults, workers: Sequence[Mapping[str, Any]], regions: Sequence[str], *, require_gpu: bool
) -> bool:
    """``gpu_acceleration``: the runner's inference runs on a GPU in every region, by its workers' own
    status (llama.cpp offload and the host's GPUs; Ollama's models in GPU memory)."""
    per_region: dict[str, list[bool | None]] = {r: [] for r in regions}
    for worker in live_workers(workers):
        if worker.get("region") in per_region:
            per_region[str(worker["region"])].append(worker_uses_gpu(worker))
    shown = {
        r: ["GPU" if v else "CPU" if v is False else "unknown" for v in vs] for r, vs in per_region.items()
    }
    on_gpu = all(vs and all(v is True for v in vs) for vs in per_region.values())
    cpu = sorted(r for r, vs in per_region.items() if any(v is False for v in vs))
    unknown = sorted(r for r, vs in per_region.items() if not vs or any(v is None for v in vs))
    reason = (f"inference on the CPU in {cpu}" if cpu else "") + (
        ("; " if cpu else "") + f"no GPU evidence in {unknown}" if unknown else ""
    )
    if on_gpu or require_gpu:
        return results.check(
            "gpu_acceleration",
            expected="GPU in every region",
            actual=shown,
            passed=on_gpu,
            detail=reason or None,
            examined=len(regions),
        )
    results.not_exercised(
        "gpu_acceleration", f"{reason} (require_gpu is off)", evidence=shown, served_by="cpu" if cpu else None
    )
    return True


def ollama_models_served(workers: Sequence[Mapping[str, Any]]) -> dict[str, list[str]] | None:
    """Per Ollama host the runner's workers call: the models pulled there (None: no region on Ollama)."""
    hosts: dict[str, set[str]] = {}
    for worker in live_workers(workers):
        status = worker.get("backend_status") or {}
        if (status.get("backend") or worker.get("backend")) != "ollama":
            continue
        host = str(status.get("host") or "?")
        models = status.get("models") or {}
        pulled = {
            str((entry or {}).get("tag") or name)
            for name, entry in models.items()
            if isinstance(entry, Mapping) and entry.get("digest")
        }
        hosts.setdefault(host, set()).update(pulled)
    return {h: sorted(m) for h, m in hosts.items()} if hosts else None


def _has(available: Iterable[str], wanted: str) -> bool:
    names = set(available)
    return (
        wanted in names
        or f"{wanted}:latest" in names
        or (wanted.endswith(":latest") and wanted[:-7] in names)
    )


def judge_ollama_models(
    results: PhaseResults,
    workers: Sequence[Mapping[str, Any]],
    required: Sequence[str],
    *,
    local: Sequence[str] | None,
    live: bool,
) -> bool:
    """``ollama_models``: the required models are pulled on every Ollama host the runner uses (else on the
    Ollama this host checks); live mode requires the plan's three models."""
    wanted = list(required) or (list(LIVE_MODELS) if live else [])
    hosts = ollama_models_served(workers)
    if hosts is None and local is not None:
        hosts = {"$OLLAMA_HOST (this machine's check)": list(local)}
    if hosts is None:
        if live:
            return results.fail(
                "ollama_models", "live mode needs the plan's models, and no Ollama serves any region"
            )
        results.not_exercised("ollama_models", "no region is served by Ollama and no Ollama host was given")
        return True
    missing = {h: [m for m in wanted if not _has(models, m)] for h, models in hosts.items()}
    missing = {h: m for h, m in missing.items() if m}
    return results.check(
        "ollama_models",
        expected=wanted or "at least one model",
        actual=hosts,
        passed=not missing and all(hosts.values()),
        detail=f"missing: {missing}" if missing else None,
        examined=sum(len(m) for m in hosts.values()),
    )


GOLEM_FACTS = ("reachable", "payment_account", "requestor", "glm_balance")
"""What a Golem region's ``backend_status`` must state for ``golem_provider`` to pass."""


def judge_golem_provider(
    results: PhaseResults, workers: Sequence[Mapping[str, Any]], regions: Sequence[str], *, live: bool
) -> bool:
    """``golem_provider``: every region on Golem reports yagna reachable, a payment account, its identity
    and a GLM balance (the plan's provider status and funds); not exercised with no region on Golem
    (a failure in live mode, which is the plan's Golem run)."""
    golem = [
        w
        for w in live_workers(workers)
        if w.get("region") in regions
        and ((w.get("backend_status") or {}).get("backend") or w.get("backend")) == "golem"
    ]
    if not golem:
        if live:
            return results.fail(
                "golem_provider", "live mode is the plan's Golem run, and no region is served by Golem"
            )
        results.not_exercised("golem_provider", "no region is served by Golem (no yagna, no provider here)")
        return True
    rows = []
    problems = []
    for worker in golem:
        status = worker.get("backend_status") or {}
        row = {
            "region": worker.get("region"),
            **{k: status.get(k) for k in (*GOLEM_FACTS, "offers", "agreements")},
        }
        rows.append(row)
        absent = [k for k in GOLEM_FACTS if status.get(k) in (None, False, "")]
        if absent:
            problems.append(f"{worker.get('region')}: {', '.join(absent)} not reported")
    results.table("golem_providers", rows)
    return results.check(
        "golem_provider",
        expected=f"{', '.join(GOLEM_FACTS)} for every Golem region",
        actual=rows,
        passed=not problems,
        detail="; ".join(problems) or None,
        examined=len(golem),
    )


# --- T-30: queue and database ---------------------------------------------------------------------


def judge_component(
    results: PhaseResults,
    check_id: str,
    health: Mapping[str, Any],
    component: str,
    served: Served,
    *,
    also: str | None = None,
    extra_ok: bool = True,
    live: bool = False,
) -> bool:
    """A component ``/health`` reports as up, judged on the real one (a substitute is not exercised;
    in live mode it is a failure)."""
    state = (health.get("components") or {}).get(component) or {}
    up = state.get("status") == "up"
    substitute = not served.exercised
    return results.check(
        check_id,
        expected=f"{component} up" + (f"; {also}" if also else "") + (f" on {served.label}" if live else ""),
        actual=f"{component} {state.get('status') or 'not reported'} ({served.served_by or 'unknown'})",
        passed=up and extra_ok and not (live and substitute),
        detail=served.reason if live and substitute else None,
        evidence=state,
        served_by=served.served_by or "unknown",
        real=min(COMPONENTS[served.component].real),
    )


def judge_samples(
    results: PhaseResults, check_id: str, rows: Sequence[Mapping[str, Any]], minimum: int
) -> bool:
    """GPU monitoring: at least ``minimum`` samples, with GPU columns (CPU-only samples: not exercised)."""
    gpu_columns = sorted({k for row in rows for k in row if k.startswith("gpu")})
    return results.check(
        check_id,
        expected=f"≥ {minimum} samples with GPU utilisation",
        actual=f"{len(rows)} samples; GPU columns: {', '.join(gpu_columns) or 'none'}",
        passed=len(rows) >= minimum,
        examined=len(rows),
        served_by="gpu" if gpu_columns else "cpu",
        real="gpu",
    )


# --- CORS / portal reads --------------------------------------------------------------------------

PORTAL_FIELDS: dict[str, tuple[str, ...]] = {
    "executions": ("id", "job_id", "region", "model", "status"),
    "diffs": ("job_id",),
    "jobs": ("id", "status"),
}
"""The fields the portal reads from each list item."""


def judge_list_read(
    results: PhaseResults,
    check_id: str,
    status: int,
    body: Any,
    key: str,
    portal_origin_ok: bool | None = None,
) -> bool:
    """A portal list read: 200, a list under ``key``, and every item carrying the fields the portal reads.
    An empty list examines nothing: not exercised."""
    items = body.get(key) if isinstance(body, Mapping) else None
    fields = PORTAL_FIELDS.get(key, ())
    if not isinstance(items, list):
        return results.check(
            check_id,
            expected={"status": 200, key: "a list"},
            actual={"status": status, key: "missing"},
            passed=False,
        )
    incomplete = [
        {
            "item": i,
            "missing": [f for f in fields if not isinstance(item, Mapping) or item.get(f) in (None, "")],
        }
        for i, item in enumerate(items)
    ]
    incomplete = [entry for entry in incomplete if entry["missing"]]
    return results.check(
        check_id,
        expected={"status": 200, key: f"items with {list(fields)}"},
        actual={"status": status, key: f"{len(items)} items", "incomplete": incomplete[:5]},
        passed=status == 200 and not incomplete,
        examined=len(items),
    )


# --- T+15: the inference target --------------------------------------------------------------------


LATENCY_COLUMNS = [
    "region",
    "model",
    "executions",
    "p50_s",
    "p95_s",
    "judged_s",
    "max_s",
    "share_under_target",
]


def latency_table(
    executions: Sequence[Mapping[str, Any]], target_s: float, quantile: float = 0.95
) -> pd.DataFrame:
    """Per region and model: completed executions, p50, p95, the ``quantile`` judged, max, and the share
    under ``target_s``."""
    frame = pd.DataFrame(list(executions))
    if frame.empty or "latency_s" not in frame:
        return pd.DataFrame(columns=LATENCY_COLUMNS)
    done = frame[(frame["status"] == "completed")].dropna(subset=["latency_s"])
    rows = []
    for (region, model), group in done.groupby(["region", "model"]):
        values = group["latency_s"].astype(float)
        rows.append(
            {
                "region": region,
                "model": model,
                "executions": len(values),
                "p50_s": float(values.quantile(0.5)),
                "p95_s": float(values.quantile(0.95)),
                "judged_s": float(values.quantile(quantile)),
                "max_s": float(values.max()),
                "share_under_target": float((values < target_s).mean()),
            }
        )
    return pd.DataFrame(rows, columns=LATENCY_COLUMNS)


def judge_inference_latency(
    results: PhaseResults,
    executions: Sequence[Mapping[str, Any]],
    regions: Sequence[str],
    models: Sequence[str],
    target_s: float,
    quantile: float = 0.95,
    *,
    on_gpu: bool,
    require_gpu: bool = False,
) -> bool:
    """``inference_latency_under_target``: p95 (the plan's words: every model) under the target for every
    region × model; a pair with no timed execution fails; the share under target is reported.

    The target is the plan's GPU target: measured on the CPU (``on_gpu`` False) the latencies are
    recorded and the check is not exercised, whichever way they fall (``require_gpu``, the live run:
    it fails).
    """
    table = latency_table(executions, target_s, quantile)
    judged: dict[str, float | None] = {}
    over, absent = [], []
    for region in regions:
        for model in models:
            match = (
                table[(table["region"] == region) & (table["model"] == model)] if not table.empty else table
            )
            if match.empty:
                judged[f"{region}/{model}"] = None
                absent.append(f"{region}/{model}")
                continue
            value = float(match.iloc[0]["judged_s"])
            judged[f"{region}/{model}"] = round(value, 3)
            if value >= target_s:
                over.append(f"{region}/{model} p{quantile * 100:g} {value:.2f}s")
    for _, row in table.iterrows():
        results.measure("inference_p50_s", row["p50_s"], unit="s", region=row["region"], model=row["model"])
        results.measure("inference_p95_s", row["p95_s"], unit="s", region=row["region"], model=row["model"])
        results.measure(
            "inference_share_under_target",
            row["share_under_target"],
            unit="",
            region=row["region"],
            model=row["model"],
        )
    results.table("inference_latency", table)
    share = (
        float((table["share_under_target"] * table["executions"]).sum() / table["executions"].sum())
        if not table.empty
        else None
    )
    shares = ", ".join(
        f"{r['region']}/{r['model']} {100 * r['share_under_target']:.0f}%" for _, r in table.iterrows()
    )
    detail = "; ".join(
        ([f"over: {', '.join(over)}"] if over else [])
        + ([f"no timed execution: {', '.join(absent)}"] if absent else [])
        + ([f"under {target_s:g}s: {100 * share:.0f}% overall ({shares})"] if share is not None else [])
    )
    if table.empty:
        results.not_exercised(
            "inference_latency_under_target", f"no execution was timed ({', '.join(absent)})"
        )
        return True
    if not on_gpu and require_gpu:
        over.append("inference not on a GPU")
        detail = f"require_gpu: the inference ran on the CPU; {detail}"
    elif not on_gpu and not absent:
        results.not_exercised(
            "inference_latency_under_target",
            f"measured on the CPU, not the GPU the target is for: {judged}; {detail}",
            evidence=judged,
            served_by="cpu",
        )
        return True
    return results.check(
        "inference_latency_under_target",
        expected=f"p{quantile * 100:g} < {target_s:g}s for every region and model",
        actual=judged,
        passed=not over and not absent,
        detail=detail or None,
        examined=int(table["executions"].sum()) if not table.empty else 0,
        served_by="gpu" if on_gpu else "cpu",
        real="gpu",
    )


# --- T+60: 5xx, the runner's log, findings, next steps ---------------------------------------------


def deliberate_requests(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Request id → why, for every request a phase declared refused on purpose (``PhaseResults.deliberate``)."""
    out: dict[str, str] = {}
    for phase, document in documents.items():
        for entry in document.get("deliberate") or []:
            if entry.get("request_id"):
                out[str(entry["request_id"])] = f"{phase}: {entry.get('reason')}"
    return out


def judge_no_unexpected_5xx(
    results: PhaseResults, documents: Mapping[str, Mapping[str, Any]], samples: Sequence[Mapping[str, Any]]
) -> bool:
    """``no_unexpected_5xx``: no 5xx in any phase's calls or the monitor's health samples, except the
    requests the phases declared deliberate (by request id). Zero calls examined: not exercised."""
    deliberate = deliberate_requests(documents)
    calls = [{"phase": phase, **call} for phase, doc in documents.items() for call in doc.get("calls") or []]
    errors = [c for c in calls if (c.get("status") or 0) >= 500 and c.get("request_id") not in deliberate]
    excused = [c for c in calls if (c.get("status") or 0) >= 500 and c.get("request_id") in deliberate]
    monitor = [s for s in samples if ((s.get("health") or {}).get("http_status") or 0) >= 500]
    return results.check(
        "no_unexpected_5xx",
        expected=0,
        actual=len(errors) + len(monitor),
        detail=f"{len(calls)} calls by the phases ({len(excused)} deliberate 5xx, by request id), "
        f"{len(samples)} monitor samples",
        evidence=[
            {k: c.get(k) for k in ("phase", "method", "route", "status", "code", "request_id")}
            for c in errors[:20]
        ]
        or None,
        examined=len(calls) + len(samples),
    )


def _log_entry(line: str) -> dict[str, Any] | None:
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        entry = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) else None


def error_lines(log_text: str, ignore_request_ids: Iterable[str] = ()) -> tuple[list[str], int]:
    """Log lines at ERROR or above and tracebacks, except those of ``ignore_request_ids`` (any level);
    also how many lines were left out for being deliberate."""
    from beacon.harness.probes import error_log_lines

    ignored = set(ignore_request_ids)
    kept, left_out = [], 0
    for line in error_log_lines(log_text):
        entry = _log_entry(line)
        request_id = entry.get("request_id") if entry else None
        if request_id is None and not entry:
            request_id = next((rid for rid in ignored if rid in line), None)
        if request_id in ignored:
            left_out += 1
            continue
        kept.append(line)
    return kept, left_out


def judge_runner_log_clean(
    results: PhaseResults, log_text: str | None, documents: Mapping[str, Mapping[str, Any]]
) -> bool:
    """``runner_log_clean``: no ERROR line or traceback in the runner's log, except the lines of the
    harness's own deliberate requests (by request id, whatever their level), and nothing else."""
    if log_text is None:
        results.not_exercised(
            "runner_log_clean",
            "the runner's log is not readable from here (pass --runner-log for a live runner)",
        )
        return True
    deliberate = deliberate_requests(documents)
    errors, left_out = error_lines(log_text, deliberate)
    lines = len(log_text.splitlines())
    results.measure("runner_log_lines", lines)
    return results.check(
        "runner_log_clean",
        expected="no ERROR lines or tracebacks (the harness's deliberate requests excepted, by request id)",
        actual=f"{len(errors)} found",
        passed=not errors,
        detail=f"{lines} lines read; {left_out} lines of {len(deliberate)} deliberate requests left out",
        evidence=[line[:300] for line in errors[:10]] or None,
        examined=lines,
    )


def earlier_outcomes(
    documents: Mapping[str, Mapping[str, Any]], own_phase: str
) -> dict[str, list[dict[str, Any]]]:
    """The earlier phases' failed and not-exercised checks (``{"fail": [...], "not_exercised": [...]}``)."""
    out: dict[str, list[dict[str, Any]]] = {"fail": [], NOT_EXERCISED: [], "all": []}
    for phase, document in documents.items():
        if phase == own_phase:
            continue
        for check in document.get("checks") or []:
            verdict = verdict_of(check)
            row = {"phase": phase, **check, "status": verdict}
            out["all"].append(row)
            if verdict != "pass":
                out[verdict].append(row)
    return out


def summarise_findings(documents: Mapping[str, Mapping[str, Any]], own_phase: str) -> list[dict[str, str]]:
    """Findings from the data: the phases' own, one per failed or not-exercised check, and the key measures."""
    findings: list[dict[str, str]] = []
    for phase, document in documents.items():
        if phase == own_phase:
            continue
        for finding in document.get("findings") or []:
            findings.append(
                {
                    "ref": phase,
                    "severity": finding.get("severity", "info"),
                    "text": f"{phase}: {finding['text']}",
                }
            )
    outcomes = earlier_outcomes(documents, own_phase)
    for check in outcomes["fail"]:
        findings.append(
            {
                "ref": f"{check['phase']}/{check['id']}",
                "severity": "warning",
                "text": f"{check['phase']}/{check['id']} failed: expected {str(check.get('expected'))[:80]}, "
                f"got {str(check.get('actual'))[:80]}"
                + (f" — {str(check['detail'])[:160]}" if check.get("detail") else ""),
            }
        )
    for check in outcomes[NOT_EXERCISED]:
        findings.append(
            {
                "ref": f"{check['phase']}/{check['id']}",
                "severity": "info",
                "text": f"{check['phase']}/{check['id']} not exercised: {str(check.get('detail'))[:200]}",
            }
        )
    for document in documents.values():
        for m in document.get("measurements") or []:
            if m["name"] in ("inference_p95_s", "end_to_end_s", "drain_s") and m.get("value") is not None:
                tags = ", ".join(f"{k}={v}" for k, v in (m.get("tags") or {}).items())
                findings.append(
                    {
                        "ref": m["name"],
                        "severity": "info",
                        "text": f"{m['name']} {m['value']:.3f}{m['unit']}" + (f" ({tags})" if tags else ""),
                    }
                )
    return findings


def judge_findings(
    results: PhaseResults,
    documents: Mapping[str, Mapping[str, Any]],
    findings: Sequence[Mapping[str, str]],
    own_phase: str,
) -> bool:
    """``findings_summarised``: every failed and not-exercised check of the earlier phases has its finding.
    No earlier results: not exercised."""
    outcomes = earlier_outcomes(documents, own_phase)
    wanted = {f"{c['phase']}/{c['id']}" for c in outcomes["fail"] + outcomes[NOT_EXERCISED]}
    covered = {f["ref"] for f in findings}
    uncovered = sorted(wanted - covered)
    return results.check(
        "findings_summarised",
        expected="a finding for every failed or not-exercised check",
        actual=f"{len(findings)} findings; {len(uncovered)} checks without one",
        passed=not uncovered,
        detail=", ".join(uncovered[:10]) or None,
        examined=len(outcomes["all"]),
    )


ALL_PASSED = "none: every check passed on the real components — schedule the live run"
"""The one next step when nothing failed, went unexercised or was not run."""


def next_steps(
    documents: Mapping[str, Mapping[str, Any]],
    criteria: Sequence[Mapping[str, Any]],
    own_phase: str,
    *,
    own: Mapping[str, Any] | None = None,
    phases: Sequence[str] = (),
) -> list[str]:
    """Next steps: fix each failed check (the earlier phases' and ``own``, this phase's results so far),
    exercise each not-exercised check and criterion on the real component, run each of ``phases`` (the
    plan's) that left no results. :data:`ALL_PASSED` only when there were earlier results and none of
    that applies."""
    outcomes = earlier_outcomes(documents, own_phase)
    own_checks = [{"phase": own_phase, **c, "status": verdict_of(c)} for c in (own or {}).get("checks") or []]
    failed = outcomes["fail"] + [c for c in own_checks if c["status"] == "fail"]
    unexercised = outcomes[NOT_EXERCISED] + [c for c in own_checks if c["status"] == NOT_EXERCISED]
    steps = [f"fix {c['phase']}/{c['id']}" for c in failed]
    for criterion in criteria:
        if criterion.get("status") == NOT_EXERCISED:
            lacking = ", ".join(criterion.get("not_exercised") or []) or "its checks"
            steps.append(f"exercise '{criterion['title']}' on {lacking}")
    for check in unexercised:
        reason = str(check.get("detail") or "not exercised")
        reason = reason if len(reason) <= 120 else reason[:119] + "…"
        steps.append(f"exercise {check['phase']}/{check['id']} ({reason})")
    steps += [f"run phase {p}" for p in phases if p != own_phase and p not in documents]
    if not any(phase != own_phase for phase in documents):
        steps.append("run the earlier phases: this run folder holds none of their results")
    if not steps and outcomes["all"]:
        steps = [ALL_PASSED]
    return list(dict.fromkeys(steps))


def judge_next_steps(
    results: PhaseResults,
    documents: Mapping[str, Mapping[str, Any]],
    criteria: Sequence[Mapping[str, Any]],
    steps: Sequence[str],
    own_phase: str,
) -> bool:
    """``next_steps``: one step per failed check and per criterion not exercised; "schedule the live
    run" only when nothing failed and nothing (check or criterion) was left unexercised."""
    outcomes = earlier_outcomes(documents, own_phase)
    needed = {f"fix {c['phase']}/{c['id']}" for c in outcomes["fail"]}
    missing = sorted(needed - set(steps))
    unexercised = [c for c in criteria if c.get("status") == NOT_EXERCISED]
    premature = any("schedule the live run" in s for s in steps) and bool(
        needed or unexercised or outcomes[NOT_EXERCISED]
    )
    return results.check(
        "next_steps",
        expected="a step per failed check and per criterion not exercised",
        actual=list(steps),
        passed=not missing and not premature and len(steps) >= len(needed) + len(unexercised),
        detail=(f"missing: {', '.join(missing[:5])}" if missing else None)
        or ("'schedule the live run' although something failed or was not exercised" if premature else None),
        examined=len(outcomes["all"]),
    )
