"""The run report: ``reports/<run-id>/index.html`` (self-contained) and ``plots/*.png``.

Everything is rendered from ``summary.json`` (which holds every phase's results), ``monitor.jsonl``
and ``attestation.json`` — so ``beacon report reports/<run-id>`` can re-render a run long after the
runner is gone. Tables the phases record under agreed names feed the figures:

| table          | rows                                                                          |
|----------------|-------------------------------------------------------------------------------|
| ``executions`` | job_id, execution_id, region, model, question_id, status, latency_s, …        |
| ``job_timeline`` | job_id, state, at (server timestamps)                                       |
| ``queue_depth``| time, region, depth                                                           |
| ``receipts``   | receipt_id, execution_id, region, model, signature_verified, leaf_index, proof_verified, cid |
| ``checkpoints``| size, root, verified, consistent_with_previous                                |
| ``host_samples``| time, cpu_percent, memory_percent, gpu*_util_percent …                       |
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from beacon.harness import findings as bias_findings
from beacon.harness import plots
from beacon.harness.run_monitor import read_monitor
from beacon.harness.summary import load_summary

TEMPLATE = "report.html.j2"


def collect_table(summary: dict[str, Any], name: str) -> pd.DataFrame:
    """All rows of table ``name`` across phases, with a ``phase`` column."""
    rows: list[dict[str, Any]] = []
    for phase in summary.get("phases", []):
        for row in ((phase.get("results") or {}).get("tables") or {}).get(name, []):
            rows.append({"phase": phase["id"], **row})
    return pd.DataFrame(rows)


def collect_calls(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for phase in summary.get("phases", []):
        for call in (phase.get("results") or {}).get("calls", []):
            rows.append({"phase": phase["id"], **call})
    return pd.DataFrame(
        rows,
        columns=[
            "phase",
            "method",
            "route",
            "status",
            "duration_s",
            "started_at",
            "code",
            "client",
            "request_id",
            "url",
        ],
    )


def _seconds(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.2f}s"


def _when(epoch: Any) -> str:
    if not epoch:
        return "–"
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(value: Any, limit: int = 160) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _html_table(frame: pd.DataFrame, columns: list[str] | None = None, limit: int = 500) -> Markup:
    if frame.empty:
        return Markup("<p class='muted'>no data</p>")
    if columns:
        frame = frame[[c for c in columns if c in frame.columns]]
    shown = frame.head(limit)
    html = shown.to_html(
        index=False, escape=True, na_rep="", classes="data", border=0, float_format=lambda v: f"{v:.4g}"
    )
    if len(frame) > limit:
        html += f"<p class='muted'>{len(frame) - limit} more rows in summary.json</p>"
    return Markup(html)  # noqa: S704 (pandas escaped every cell)


def _latency_stats(executions: pd.DataFrame, target: float) -> pd.DataFrame:
    if executions.empty or "latency_s" not in executions:
        return pd.DataFrame()
    rows = executions.dropna(subset=["latency_s"])
    out = []
    for (region, model), group in rows.groupby(["region", "model"]):
        values = group["latency_s"]
        out.append(
            {
                "region": region,
                "model": model,
                "executions": len(values),
                "p50_s": values.quantile(0.5),
                "p95_s": values.quantile(0.95),
                "max_s": values.max(),
                f"under_{target:g}s": f"{100.0 * (values < target).mean():.0f}%",
            }
        )
    return pd.DataFrame(out)


def _api_stats(calls: pd.DataFrame) -> pd.DataFrame:
    if calls.empty:
        return pd.DataFrame()
    grouped = calls.groupby(["method", "route"])
    out = grouped["duration_s"].describe(percentiles=[0.5, 0.95])[["count", "50%", "95%", "max"]]
    out.columns = ["calls", "p50_s", "p95_s", "max_s"]
    statuses = grouped["status"].apply(
        lambda s: ", ".join(f"{int(k)}×{v}" for k, v in s.value_counts().sort_index().items() if pd.notna(k))
    )
    out["statuses"] = statuses
    return out.reset_index().sort_values("calls", ascending=False)


def _monitor_frames(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    samples = read_monitor(run_dir / "monitor.jsonl")
    host = pd.DataFrame([{**(s.get("host") or {}), "time": s["time"]} for s in samples if s.get("host")])
    depths = pd.DataFrame(
        [
            {"time": s["time"], "region": r, "depth": d}
            for s in samples
            for r, d in (s.get("queues") or {}).items()
        ]
    )
    health = pd.DataFrame([{"time": s["time"], **(s.get("health") or {})} for s in samples])
    return host, depths, health


def render_report(run_dir: Path) -> Path:
    """(Re-)render ``index.html`` and ``plots/`` of a run folder from its data files."""
    summary = load_summary(run_dir)
    run_start = float(summary["started_at"])
    target = float(summary.get("inference_target_s") or 2.0)
    phases = pd.DataFrame(
        [
            {k: p.get(k) for k in ("id", "title", "status", "started_at", "finished_at", "duration_s")}
            for p in summary["phases"]
        ]
    )
    cells = pd.DataFrame(
        [{"phase": p["id"], **cell} for p in summary["phases"] for cell in p.get("cells", [])]
    )
    executions = collect_table(summary, "executions")
    timeline = collect_table(summary, "job_timeline")
    host, depths, health = _monitor_frames(run_dir)
    phase_depths = collect_table(summary, "queue_depth")
    if not phase_depths.empty:
        depths = pd.concat([depths, phase_depths[["time", "region", "depth"]]], ignore_index=True)
    phase_host = collect_table(summary, "host_samples")
    calls = collect_calls(summary)

    figures: dict[str, bytes | None] = {
        "phases": plots.phase_gantt(phases, run_start),
        "cells": plots.cell_timings(cells) if not cells.empty else None,
        "latency": plots.latency_by_region_model(executions, target) if "latency_s" in executions else None,
        "lifecycle": plots.job_timeline(timeline)
        if {"job_id", "state", "at"} <= set(timeline.columns)
        else None,
        "queue_depth": plots.queue_depth(depths, run_start) if not depths.empty else None,
        "host": plots.host_load(host if phase_host.empty else pd.concat([host, phase_host]), run_start)
        if not (host.empty and phase_host.empty)
        else None,
        "api": plots.api_latency(calls.dropna(subset=["duration_s"])) if not calls.empty else None,
    }
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    images: dict[str, Markup] = {}
    for name, png in figures.items():
        if png is None:
            continue
        (plot_dir / f"{name}.png").write_bytes(png)
        encoded = base64.b64encode(png).decode("ascii")
        images[name] = Markup(f'<img alt="{name}" src="data:image/png;base64,{encoded}">')  # noqa: S704

    attestation = _read_json(run_dir / "attestation.json")
    attestation_error = _read_json(run_dir / "attestation-error.json")
    server_errors = calls[calls["status"].fillna(0) >= 500] if not calls.empty else calls
    health_failures = health[health["http_status"] != 200] if "http_status" in health else health

    env = Environment(
        loader=PackageLoader("beacon.harness", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters.update(seconds=_seconds, when=_when, short=_short)
    html = env.get_template(TEMPLATE).render(
        summary=summary,
        images=images,
        phases=summary["phases"],
        criteria=summary.get("criteria", []),
        target=target,
        latency_table=_html_table(_latency_stats(executions, target)),
        executions_table=_html_table(
            executions,
            [
                "phase",
                "job_id",
                "region",
                "model",
                "question_id",
                "status",
                "latency_s",
                "queue_s",
                "tokens_out",
                "backend",
            ],
        ),
        receipts_table=_html_table(
            collect_table(summary, "receipts"),
            [
                "receipt_id",
                "execution_id",
                "region",
                "model",
                "signature_verified",
                "leaf_index",
                "proof_verified",
                "cid",
            ],
        ),
        checkpoints_table=_html_table(collect_table(summary, "checkpoints")),
        golem_tables={  # the Golem regions (beacon.harness.golem_checks): negotiation per region, payments
            name: _html_table(collect_table(summary, f"golem_{name}"))
            for name in ("offers", "executions", "negotiation", "invoices", "glm_balance")
        },
        error_paths_table=_html_table(collect_table(summary, "error_paths")),
        spec_scores_table=_html_table(collect_table(summary, "spec_scores")),
        threshold_verdicts_table=_html_table(collect_table(summary, "threshold_verdicts")),
        models_served_table=_html_table(collect_table(summary, "models_served")),
        rbac_table=_html_table(collect_table(summary, "rbac_matrix")),
        slow_cells_table=_html_table(
            cells.sort_values("duration_s", ascending=False).head(15) if not cells.empty else cells,
            ["phase", "index", "label", "duration_s", "status"],
        ),
        api_table=_html_table(_api_stats(calls)),
        server_errors_table=_html_table(
            server_errors, ["phase", "method", "route", "status", "code", "request_id"]
        ),
        health_samples=len(health),
        health_failures=len(health_failures),
        findings=[
            {"phase": p["id"], **f}
            for p in summary["phases"]
            for f in (p.get("results") or {}).get("findings", [])
        ],
        attestation=attestation,
        attestation_error=attestation_error,
        bias=_bias_section(run_dir, summary),
    )
    out = run_dir / "index.html"
    out.write_text(html, encoding="utf-8")
    return out


def _img(png: bytes | None, alt: str) -> Markup | None:
    if png is None:
        return None
    encoded = base64.b64encode(png).decode("ascii")
    return Markup(f'<img alt="{alt}" src="data:image/png;base64,{encoded}">')  # noqa: S704


def _bias_section(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The findings section's context: each saved difference report's tables and figures."""
    context = bias_findings.section_context(run_dir, summary)
    jobs = []
    for j in context["jobs"]:
        jobs.append(
            {
                **j,
                "heatmap_image": _img(j["heatmap"], "similarity per question and region pair"),
                "metrics_table": _html_table(j["metrics"], ["metric", "value", "level"]),
                "findings_table": _html_table(j["report_findings"], ["level", "metric", "value", "text"]),
                "answers_table": _html_table(
                    j["answers"].astype(object).fillna("–"),
                    [
                        "question_id",
                        "variant",
                        "model",
                        "region",
                        "class",
                        "confidence",
                        "factual",
                        "evidence",
                        "excerpt",
                        "output_matches_report",
                    ],
                ),
                "similarity_table": _html_table(
                    j["similarity"],
                    [
                        "question_id",
                        "variant",
                        "model",
                        "pair",
                        "similarity",
                        "jaccard",
                        "classification",
                        "reasons",
                        "summary",
                    ],
                ),
                "attribution_table": _html_table(j["attribution"], ["field", "value"]),
            }
        )
    return {
        "jobs": jobs,
        "refusal_image": _img(context["refusal_png"], "refusal rate per region and model"),
        "rates_table": _html_table(context["rates"]) if jobs else Markup(""),
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
