"""The report's figures (matplotlib, Agg): each function returns PNG bytes, or None without data.

Data comes as pandas DataFrames built by :mod:`beacon.harness.report` from ``summary.json`` and
``monitor.jsonl``; nothing here talks to a runner.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Rectangle

from beacon.worker.lifecycle import JobStatus

STATUS_COLOURS = {
    "passed": "#2e7d32",
    "pass": "#2e7d32",
    "failed": "#c62828",
    "fail": "#c62828",
    "error": "#8e24aa",
    "skipped": "#9e9e9e",
    "skip": "#9e9e9e",
    "not_exercised": "#ef6c00",
}
STATE_COLOURS = {"created": "#90a4ae", "enqueued": "#ffb300", "executing": "#1e88e5", "completed": "#43a047"}


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (laid out, 110 dpi); the figure is closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def phase_gantt(phases: pd.DataFrame, run_start: float) -> bytes | None:
    """One bar per phase from its start to its end, coloured by status."""
    rows = phases.dropna(subset=["started_at", "finished_at"])
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    labels = []
    for position, (_, row) in enumerate(rows.iloc[::-1].iterrows()):
        start = row["started_at"] - run_start
        ax.barh(
            position,
            row["finished_at"] - row["started_at"],
            left=start,
            color=STATUS_COLOURS.get(row["status"], "#607d8b"),
        )
        ax.text(
            start + row["finished_at"] - row["started_at"] + 0.3,
            position,
            f"{row['duration_s']:.1f}s",
            va="center",
            fontsize=8,
        )
        labels.append(row["id"])
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("seconds since the run started")
    ax.set_title("Phases (green passed, red failed, purple error)")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def cell_timings(cells: pd.DataFrame, top: int = 20) -> bytes | None:
    """The slowest cells of the run, labelled phase:cell."""
    rows = cells.dropna(subset=["duration_s"]).sort_values("duration_s", ascending=False).head(top)
    if rows.empty:
        return None
    rows = rows.iloc[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    labels = [f"{r.phase} [{r.index}] {str(r.label)[:48]}" for r in rows.itertuples()]
    colours = ["#c62828" if r.exception else "#1e88e5" for r in rows.itertuples()]
    ax.barh(range(len(rows)), rows["duration_s"], color=colours)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("seconds (papermill cell metadata)")
    ax.set_title(f"The {len(rows)} slowest cells")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def latency_by_region_model(executions: pd.DataFrame, target_s: float) -> bytes | None:
    """Inference latency of every execution, per region and model, against the plan's target."""
    rows = executions.dropna(subset=["latency_s"])
    if rows.empty:
        return None
    groups = sorted(rows.groupby(["region", "model"]).groups)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) + 2), 4))
    data = [
        rows[(rows["region"] == region) & (rows["model"] == model)]["latency_s"].to_numpy()
        for region, model in groups
    ]
    ax.boxplot(data, showfliers=False)
    for position, values in enumerate(data, start=1):
        jitter = [position + 0.08 * ((i % 5) - 2) for i in range(len(values))]
        ax.scatter(jitter, values, s=12, alpha=0.7, color="#1e88e5", zorder=3)
    ax.axhline(target_s, color="#c62828", linestyle="--", label=f"target {target_s:g}s")
    ax.set_xticks(range(1, len(groups) + 1), [f"{region}\n{model}" for region, model in groups], fontsize=8)
    ax.set_ylabel("seconds per execution")
    ax.set_title("Inference latency per region and model")
    ax.legend(loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def job_timeline(timeline: pd.DataFrame) -> bytes | None:
    """Each job's life: created → enqueued → executing → completed, as coloured segments."""
    if timeline.empty:
        return None
    order = list(JobStatus)  # created … the terminal states: the order of a job's life
    jobs = list(dict.fromkeys(timeline.sort_values("at")["job_id"]))
    start = timeline["at"].min()
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(jobs) + 1.4))
    for position, job in enumerate(reversed(jobs)):
        events = timeline[timeline["job_id"] == job].copy()
        events["rank"] = events["state"].map(lambda s: order.index(s) if s in order else len(order))
        events = events.sort_values(["at", "rank"])
        times = list(events["at"])
        states = list(events["state"])
        for i, state in enumerate(states[:-1]):
            ax.barh(
                position,
                times[i + 1] - times[i],
                left=times[i] - start,
                color=STATE_COLOURS.get(state, "#607d8b"),
            )
        ending = STATE_COLOURS["completed"] if states[-1] == "completed" else STATUS_COLOURS["failed"]
        ax.plot([times[-1] - start], [position], marker="|", markersize=16, markeredgewidth=3, color=ending)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in STATE_COLOURS.values()]
    labels = [*list(STATE_COLOURS)[:-1], "completed (end mark)"]
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_yticks(range(len(jobs)), [str(j)[:36] for j in reversed(jobs)], fontsize=7)
    ax.set_xlabel("seconds since the first job was created")
    ax.set_title("Job lifecycle (server timestamps)")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def queue_depth(depths: pd.DataFrame, run_start: float) -> bytes | None:
    """Queue depth per region over time."""
    if depths.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for region, rows in depths.sort_values("time").groupby("region"):
        ax.step(rows["time"] - run_start, rows["depth"], where="post", label=str(region))
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("messages waiting")
    ax.set_title("Queue depth per region")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def host_load(samples: pd.DataFrame, run_start: float) -> bytes | None:
    """CPU and memory (and GPU utilisation, if any) of the host over the run."""
    if samples.empty or "cpu_percent" not in samples:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.2))
    t = samples["time"] - run_start
    ax.plot(t, samples["cpu_percent"], label="CPU %", color="#1e88e5")
    if "memory_percent" in samples:
        ax.plot(t, samples["memory_percent"], label="memory %", color="#8e24aa")
    for column in samples.columns:
        if column.startswith("gpu") and column.endswith("util_percent"):
            ax.plot(t, samples[column], label=column.replace("_util_percent", " util %"))
    ax.set_ylim(0, 105)
    ax.set_xlabel("seconds since the run started")
    ax.set_title("Host load")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def api_latency(calls: pd.DataFrame, top: int = 15) -> bytes | None:
    """p50/p95 response time of the most used routes."""
    if calls.empty:
        return None
    stats = calls.groupby(["method", "route"])["duration_s"].describe(percentiles=[0.5, 0.95])
    stats = stats.sort_values("count", ascending=False).head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(stats) + 1.2))
    labels = [f"{method} {route}" for method, route in stats.index]
    ax.barh(range(len(stats)), stats["95%"] * 1000, color="#ffb300", label="p95")
    ax.barh(range(len(stats)), stats["50%"] * 1000, color="#1e88e5", label="p50")
    ax.set_yticks(range(len(stats)), labels, fontsize=7)
    ax.set_xlabel("milliseconds (client-side, including the network)")
    ax.set_title("API response time per route")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return png(fig)
