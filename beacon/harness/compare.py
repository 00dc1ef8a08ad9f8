"""Runs compared: ``beacon report --compare A B [C …]``, its HTML page, and the comparison notebook.

Everything comes from each run folder's ``summary.json`` (and the difference reports T+45 saved
there), so runs can be compared long after their runners are gone. Runs are labelled A, B, C … in
the order given; deltas are against A (the baseline).

| part          | from                                                                          |
|---------------|-------------------------------------------------------------------------------|
| criteria, checks | the criteria and every phase's checks: verdicts that differ between runs   |
| latency       | the ``executions`` tables: p50 / p95 / n per region and model                 |
| end_to_end    | the ``end_to_end_s`` measurements, per region                                 |
| api           | the phases' recorded calls: p50 / p95 per route                               |
| queue         | ``queue_s`` of the executions, ``executions_per_s`` and ``drain_s``           |
| environment   | host, Beacon version, runner, backends and models of the executions           |
| bias          | answers (region × question) that changed class, and region pairs whose similarity drifted |
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from beacon.harness import findings as bias_findings
from beacon.harness.plots import png
from beacon.harness.report import collect_calls, collect_table
from beacon.harness.summary import load_summary

DRIFT_THRESHOLD = 0.05
"""A region pair's similarity moving by at least this much between runs is listed as drift."""
TEMPLATE = "compare.html.j2"


def labels(n: int) -> list[str]:
    """A, B, C … (then A2, B2 … past 26 runs)."""
    letters = string.ascii_uppercase
    return [letters[i % 26] + (str(i // 26 + 1) if i >= 26 else "") for i in range(n)]


def _host(summary: Mapping[str, Any]) -> dict[str, Any]:
    host = summary.get("host") or {}
    gpu = host.get("gpu")
    gpus = ", ".join(str(g.get("name")) for g in gpu) if isinstance(gpu, list) and gpu else "none"
    ram = host.get("ram_bytes")
    return {
        "host.os": host.get("os") or host.get("platform"),
        "host.cpus": host.get("cpu_count"),
        "host.memory_gib": round(float(ram) / 2**30, 1) if ram else host.get("memory_gib"),
        "host.gpu": gpus,
        "host.python": host.get("python"),
        "beacon_version": summary.get("beacon_version"),
        # an embedded runner gets a new port each run: its URL is not a change of runner
        "runner": "embedded"
        if (summary.get("runner") or {}).get("embedded")
        else (summary.get("runner") or {}).get("url"),
    }


def _quantiles(values: pd.Series) -> dict[str, Any]:
    return {
        "n": int(values.size),
        "p50_s": float(values.quantile(0.5)),
        "p95_s": float(values.quantile(0.95)),
    }


def _measurements(summary: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    return [
        {**(m.get("tags") or {}), "value": m.get("value"), "phase": phase["id"]}
        for phase in summary.get("phases", [])
        for m in (phase.get("results") or {}).get("measurements", [])
        if m.get("name") == name and m.get("value") is not None
    ]


def compare_runs(run_dirs: Sequence[Path]) -> dict[str, Any]:
    """What changed across the runs (A is the baseline): see the module docstring for the parts."""
    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two run folders")
    summaries = [load_summary(Path(d)) for d in run_dirs]
    tags = labels(len(summaries))
    runs = [
        {
            "label": tag,
            "run_id": s["run_id"],
            "folder": str(Path(d)),
            "status": s.get("status"),
            "duration_s": s.get("duration_s"),
            "started_at": s.get("started_at"),
            "started": dt.datetime.fromtimestamp(float(s["started_at"]), dt.UTC).strftime(
                "%Y-%m-%d %H:%M UTC"
            )
            if s.get("started_at")
            else "–",
        }
        for tag, s, d in zip(tags, summaries, run_dirs, strict=True)
    ]
    return {
        "runs": runs,
        "criteria": _criteria(summaries, tags),
        "phases": _phases(summaries, tags),
        "changed_checks": _changed_checks(summaries, tags),
        "latency": _latency(summaries, tags),
        "end_to_end": _end_to_end(summaries, tags),
        "api": _api(summaries, tags),
        "queue": _queue(summaries, tags),
        "environment": _environment(summaries, tags),
        "bias": _bias([Path(d) for d in run_dirs], summaries, tags),
    }


def _criteria(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    titles: dict[str, str] = {}
    by_run: list[dict[str, str]] = []
    for summary in summaries:
        seen = {}
        for c in summary.get("criteria", []):
            titles.setdefault(c["id"], c.get("title") or c["id"])
            seen[c["id"]] = c.get("status")
        by_run.append(seen)
    return [
        {
            "criterion": cid,
            "title": title,
            **{tag: run.get(cid, "absent") for tag, run in zip(tags, by_run, strict=True)},
            "changed": len({run.get(cid, "absent") for run in by_run}) > 1,
        }
        for cid, title in titles.items()
    ]


def _phases(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    by_run = [{p["id"]: p for p in s.get("phases", [])} for s in summaries]
    ids = list(dict.fromkeys(pid for run in by_run for pid in run))
    rows = []
    for pid in ids:
        row: dict[str, Any] = {"phase": pid}
        base = by_run[0].get(pid, {}).get("duration_s")
        for tag, run in zip(tags, by_run, strict=True):
            phase = run.get(pid, {})
            row[f"status {tag}"] = phase.get("status", "absent")
            row[f"time {tag} (s)"] = phase.get("duration_s")
            if tag != tags[0]:
                value = phase.get("duration_s")
                row[f"Δ {tag} (s)"] = value - base if value is not None and base is not None else None
        rows.append(row)
    return rows


def _changed_checks(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    by_run = [
        {
            (p["id"], c["id"]): c
            for p in s.get("phases", [])
            for c in (p.get("results") or {}).get("checks", [])
        }
        for s in summaries
    ]
    keys = list(dict.fromkeys(k for run in by_run for k in run))
    rows = []
    for phase_id, check_id in keys:
        verdicts = [run.get((phase_id, check_id), {}).get("status", "absent") for run in by_run]
        if len(set(verdicts)) == 1:
            continue
        last: Mapping[str, Any] = next(
            (run[(phase_id, check_id)] for run in reversed(by_run) if (phase_id, check_id) in run), {}
        )
        rows.append(
            {
                "phase": phase_id,
                "check": check_id,
                **dict(zip(tags, verdicts, strict=True)),
                "last actual": last.get("actual"),
                "last detail": last.get("detail"),
            }
        )
    return rows


def _latency(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for tag, summary in zip(tags, summaries, strict=True):
        executions = collect_table(dict(summary), "executions")
        if executions.empty or "latency_s" not in executions:
            continue
        timed = executions.dropna(subset=["latency_s"])
        for (region, model), group in timed.groupby(["region", "model"]):
            rows.append({"run": tag, "region": region, "model": model, **_quantiles(group["latency_s"])})
    return rows


def _end_to_end(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for tag, summary in zip(tags, summaries, strict=True):
        frame = pd.DataFrame(_measurements(summary, "end_to_end_s"))
        if frame.empty:
            continue
        if "region" not in frame:
            frame["region"] = "all"
        frame["region"] = frame["region"].fillna("all")
        for region, group in frame.groupby("region"):
            values = group["value"].astype(float)
            rows.append(
                {
                    "run": tag,
                    "region": region,
                    "n": int(values.size),
                    "mean_s": float(values.mean()),
                    "max_s": float(values.max()),
                }
            )
    return rows


def _api(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str], top: int = 12) -> list[dict[str, Any]]:
    frames = []
    for tag, summary in zip(tags, summaries, strict=True):
        calls = collect_calls(dict(summary)).dropna(subset=["duration_s"])
        if not calls.empty:
            frames.append(calls.assign(run=tag))
    if not frames:
        return []
    calls = pd.concat(frames, ignore_index=True)
    busiest = calls.groupby(["method", "route"]).size().sort_values(ascending=False).head(top).index
    rows = []
    for (method, route), group in calls.groupby(["method", "route"]):
        if (method, route) not in busiest:
            continue
        for tag, per_run in group.groupby("run"):
            rows.append(
                {"run": tag, "route": f"{method} {route}", **_quantiles(per_run["duration_s"].astype(float))}
            )
    return rows


def _queue(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    """Queue efficiency per run: time executions waited, share of time spent working, throughput."""
    rows = []
    for tag, summary in zip(tags, summaries, strict=True):
        executions = collect_table(dict(summary), "executions")
        row: dict[str, Any] = {"run": tag}
        if not executions.empty and {"queue_s", "latency_s"} <= set(executions.columns):
            timed = executions.dropna(subset=["queue_s", "latency_s"])
            if not timed.empty:
                busy, waiting = float(timed["latency_s"].sum()), float(timed["queue_s"].sum())
                row.update(
                    executions=len(timed),
                    queue_p50_s=float(timed["queue_s"].quantile(0.5)),
                    queue_p95_s=float(timed["queue_s"].quantile(0.95)),
                    working_share=busy / (busy + waiting) if busy + waiting > 0 else None,
                )
        for name in ("executions_per_s", "drain_s"):
            values = [float(m["value"]) for m in _measurements(summary, name)]
            row[name] = (
                max(values) if name == "executions_per_s" and values else (values[-1] if values else None)
            )
        rows.append(row)
    return rows


def _environment(summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    """Host, version, runner, backends and models of each run; ``changed`` marks differences."""
    facts = []
    for summary in summaries:
        entry = _host(summary)
        executions = collect_table(dict(summary), "executions")
        for column, name in (("backend", "backends"), ("model", "models"), ("region", "regions")):
            values = sorted({str(v) for v in executions[column].dropna()}) if column in executions else []
            entry[name] = ", ".join(values) or "–"
        facts.append(entry)
    names = list(dict.fromkeys(k for f in facts for k in f))
    return [
        {
            "field": name,
            **{tag: f.get(name) for tag, f in zip(tags, facts, strict=True)},
            "changed": len({str(f.get(name)) for f in facts}) > 1,
        }
        for name in names
    ]


def _bias(
    run_dirs: Sequence[Path], summaries: Sequence[Mapping[str, Any]], tags: Sequence[str]
) -> dict[str, Any]:
    """Answers whose class changed, and region pairs whose similarity drifted, between runs.

    Jobs differ between runs; answers are matched by (benchmark, model, question, variant, region).
    """
    classes: dict[tuple[Any, ...], dict[str, set[str]]] = {}
    similarities: dict[tuple[Any, ...], dict[str, list[float]]] = {}
    reports = []
    for tag, run_dir, summary in zip(tags, run_dirs, summaries, strict=True):
        jobs = bias_findings.load_findings(run_dir, summary)
        reports.append({"run": tag, "reports": len(jobs), "jobs": ", ".join(j.job_id for j in jobs)})
        for job in jobs:
            benchmark = (job.report.get("benchmark") or {}).get("name")
            answers = bias_findings.answers_frame(job)
            for answer in answers.to_dict("records"):
                key = (benchmark, answer["model"], answer["question_id"], answer["variant"], answer["region"])
                classes.setdefault(key, {}).setdefault(tag, set()).add(str(answer["class"]))
            for row in bias_findings.similarity_frame(job).itertuples():
                key = (benchmark, row.model, row.question_id, row.variant, row.pair)
                if row.similarity is not None and not pd.isna(row.similarity):
                    similarities.setdefault(key, {}).setdefault(tag, []).append(float(row.similarity))
    changed = []
    # Several jobs of a run may ask the same question: a run's value is the set of its classes
    # (shown "complete/refusal") and the mean of its similarities.
    for (benchmark, model, question, variant, region), labels_per_run in classes.items():
        per_run = {tag: "/".join(sorted(found)) for tag, found in labels_per_run.items()}
        if len(per_run) > 1 and len(set(per_run.values())) > 1:
            changed.append(
                {
                    "benchmark": benchmark,
                    "model": model,
                    "question_id": question,
                    "variant": variant,
                    "region": region,
                    **{tag: per_run.get(tag, "–") for tag in tags},
                }
            )
    drift = []
    for (benchmark, model, question, variant, pair), values_per_run in similarities.items():
        means = {tag: sum(found) / len(found) for tag, found in values_per_run.items()}
        values = list(means.values())
        if len(values) < 2:
            continue
        moved = max(values) - min(values)
        if moved >= DRIFT_THRESHOLD:
            drift.append(
                {
                    "benchmark": benchmark,
                    "model": model,
                    "question_id": question,
                    "variant": variant,
                    "pair": pair,
                    **{tag: means.get(tag) for tag in tags},
                    "drift": moved,
                }
            )
    compared = sum(1 for per_run in classes.values() if len(per_run) > 1)
    return {
        "reports": reports,
        "answers_compared": compared,
        "class_changes": changed,
        "similarity_drift": sorted(drift, key=lambda r: -float(r["drift"])),
        "drift_threshold": DRIFT_THRESHOLD,
    }


# --- figures -------------------------------------------------------------------------------------------


def grouped_bars(
    rows: Sequence[Mapping[str, Any]], *, group: str, value: str, title: str, xlabel: str
) -> bytes | None:
    """One bar per run within each group (a region/model, a route, a phase)."""
    frame = pd.DataFrame(rows)
    if frame.empty or value not in frame or frame[value].isna().all():
        return None
    grid = frame.pivot_table(index=group, columns="run", values=value, aggfunc="mean")
    runs = list(grid.columns)
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(grid) * max(1, len(runs)) / 1.5 + 1.6))
    height = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        positions = [p + (i - (len(runs) - 1) / 2) * height for p in range(len(grid))]
        ax.barh(positions, grid[run].fillna(0), height=height, label=f"run {run}")
    ax.set_yticks(range(len(grid)), [str(i) for i in grid.index], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def figures(comparison: Mapping[str, Any]) -> dict[str, bytes | None]:
    """The comparison's plots as PNG bytes (None where a part has no data)."""
    latency = [{**r, "group": f"{r['region']} {r['model']}"} for r in comparison["latency"]]
    phases = [
        {"run": run["label"], "phase": row["phase"], "duration_s": row.get(f"time {run['label']} (s)")}
        for row in comparison["phases"]
        for run in comparison["runs"]
    ]
    drift = [
        {
            "run": run["label"],
            "item": f"{r['question_id']} [{r['variant']}] {r['pair']}",
            "similarity": r.get(run["label"]),
        }
        for r in comparison["bias"]["similarity_drift"][:20]
        for run in comparison["runs"]
    ]
    charts = {  # name: (rows, one bar group per, the value, title, x axis)
        "latency": (latency, "group", "p95_s", "Inference p95 per region and model", "seconds"),
        "end_to_end": (
            comparison["end_to_end"],
            "region",
            "max_s",
            "End-to-end time per region (max)",
            "seconds",
        ),
        "api": (comparison["api"], "route", "p95_s", "API p95 per route (client-side)", "seconds"),
        "phases": (phases, "phase", "duration_s", "Phase durations", "seconds"),
        "drift": (
            drift,
            "item",
            "similarity",
            "Region pairs whose similarity drifted",
            "semantic similarity",
        ),
    }
    return {
        name: grouped_bars(rows, group=group, value=value, title=title, xlabel=xlabel)
        for name, (rows, group, value, title, xlabel) in charts.items()
    }


# --- the HTML page ---------------------------------------------------------------------------------------


def _shown(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else value


def _table(rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> Markup:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return Markup("<p class='muted'>no data</p>")
    shown = frame.astype(object).map(_shown)
    html = shown.to_html(index=False, escape=True, classes="data", border=0)
    return Markup(html)  # noqa: S704 (pandas escaped every cell)


def wide(rows: Sequence[Mapping[str, Any]], index: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Long rows (one per run) as one row per ``index`` with ``value run`` columns."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return frame
    grid = frame.pivot_table(index=list(index), columns="run", values=list(values), aggfunc="first")
    grid.columns = [f"{value} {run}" for value, run in grid.columns]
    return grid.reset_index()


def render_comparison(run_dirs: Sequence[Path], out: Path) -> Path:
    """Write the comparison page (self-contained HTML, figures inline) to ``out``."""
    comparison = compare_runs(run_dirs)
    images = {
        name: Markup(f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">')  # noqa: S704
        for name, png in figures(comparison).items()
        if png is not None
    }
    env = Environment(
        loader=PackageLoader("beacon.harness", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    hrefs = {
        r["label"]: os.path.relpath(Path(r["folder"]).resolve() / "index.html", out.resolve().parent)
        for r in comparison["runs"]
    }
    html = env.get_template(TEMPLATE).render(
        c=comparison,
        hrefs=hrefs,
        images=images,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        criteria=_table(comparison["criteria"]),
        checks=_table(comparison["changed_checks"]),
        phases=_table(comparison["phases"]),
        latency=_table(wide(comparison["latency"], ["region", "model"], ["n", "p50_s", "p95_s"])),
        end_to_end=_table(wide(comparison["end_to_end"], ["region"], ["n", "mean_s", "max_s"])),
        api=_table(wide(comparison["api"], ["route"], ["n", "p50_s", "p95_s"])),
        queue=_table(comparison["queue"]),
        environment=_table(sorted(comparison["environment"], key=lambda r: not r["changed"])),
        bias_reports=_table(comparison["bias"]["reports"]),
        class_changes=_table(comparison["bias"]["class_changes"]),
        drift=_table(comparison["bias"]["similarity_drift"]),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def default_output(run_dirs: Sequence[Path]) -> Path:
    """``<folder of the first run>/../compare-<run ids>.html`` (beside the runs, not inside one)."""
    ids = "-vs-".join(Path(d).resolve().name for d in run_dirs)
    return Path(run_dirs[0]).resolve().parent / f"compare-{ids}.html"


# --- the terminal ----------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)[:60]


def _print_table(
    console: Any, title: str, frame: pd.DataFrame | Sequence[Mapping[str, Any]], empty: str
) -> None:
    from rich.table import Table

    rows = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
    if rows.empty:
        console.print(f"[bold]{title}[/]: {empty}")
        return
    table = Table(title=title, title_justify="left")
    for column in rows.columns:
        table.add_column(str(column))
    for record in rows.itertuples(index=False):
        table.add_row(*(_cell(v) for v in record))
    console.print(table)


def print_comparison(comparison: Mapping[str, Any], console: Any) -> None:
    """The comparison as rich tables (what ``beacon report --compare`` prints)."""
    runs = comparison["runs"]
    console.print(
        "   ".join(
            f"{r['label']} = {r['run_id']} ({r['status']}, "
            + (f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "–")
            + ")"
            for r in runs
        )
    )
    _print_table(console, "Success criteria", comparison["criteria"], "none stated")
    _print_table(
        console, "Checks whose verdict changed", comparison["changed_checks"], "no check changed its verdict"
    )
    changed_env = [r for r in comparison["environment"] if r["changed"]]
    _print_table(console, "Environment changes (host, backends, models)", changed_env, "none")
    _print_table(
        console,
        "Inference latency per region and model",
        wide(comparison["latency"], ["region", "model"], ["p50_s", "p95_s"]),
        "no executions recorded",
    )
    _print_table(
        console,
        "End-to-end time per region",
        wide(comparison["end_to_end"], ["region"], ["max_s"]),
        "not measured",
    )
    _print_table(console, "Queue efficiency", comparison["queue"], "no data")
    _print_table(
        console, "API latency (p95 per route)", wide(comparison["api"], ["route"], ["p95_s"]), "no calls"
    )
    _print_table(console, "Phases", comparison["phases"], "none")
    bias = comparison["bias"]
    console.print(
        f"Bias findings: {bias['answers_compared']} answers in more than one run, "
        f"{len(bias['class_changes'])} changed class, {len(bias['similarity_drift'])} region pairs drifted "
        f"≥ {bias['drift_threshold']} in similarity"
    )
    _print_table(console, "Answers that changed class", bias["class_changes"], "none")
    _print_table(console, "Similarity drift", bias["similarity_drift"][:20], "none")


def find_reports_dir(start: Path | None = None) -> Path | None:
    """Where run folders live: the session's (``BEACON_SESSION_FILE``) parent, else the nearest
    ``reports/`` at or above ``start`` (the working directory)."""
    from beacon.harness.session import read_session_file

    shared = read_session_file()
    if shared is not None:
        return Path(str(shared["run_dir"])).parent
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "reports").is_dir():
            return folder / "reports"
    return None


def recent_runs(reports_dir: Path | None, count: int = 2) -> list[Path]:
    """The ``count`` most recent run folders (with a summary.json) under ``reports_dir``, oldest first."""
    if reports_dir is None:
        return []
    runs = [p.parent for p in reports_dir.glob("*/summary.json")]
    return sorted(runs, key=lambda p: (p / "summary.json").stat().st_mtime)[-count:]
