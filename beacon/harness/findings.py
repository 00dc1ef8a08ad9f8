"""The benchmark's findings: what the signed difference reports of a run say, as tables and figures.

A difference report (``GET /api/v1/diffs/{job_id}``, docs/analysis.md) is one signed document per
bias-detection job. T+45 verifies each one (signature with the runner key, inclusion in the log
under a signed checkpoint) and saves it verbatim in the run folder with the answers it compares
(:func:`collect_difference_reports`). Everything here reads those files, so the report's findings
section and the findings notebook can be re-rendered long after the runner is gone::

    jobs = load_findings(run_dir)                 # one JobFindings per saved report
    answers_frame(jobs[0])                        # per question × region: class, evidence, excerpt
    similarity_frame(jobs[0])                     # per question × region pair: semantic similarity …
    refusal_frame(jobs)                           # refusal / evasion rate per region and model
    metrics_frame(jobs[0])                        # every metric the report carries (new ones too)

Nothing here classifies or compares anew: every class, similarity and metric is the signed report's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from beacon.canonical import jcs, sha256_hex
from beacon.client import BeaconAPIError, BeaconClient, BeaconError
from beacon.harness.evidence import EvidenceError, verify_receipt_inclusion, verify_runner_signature
from beacon.harness.plots import png
from beacon.harness.results import load_phase_results

TABLE = "difference_reports"
"""The phase-results table that lists the saved reports (one row per job)."""
EXCERPT_CHARS = 240
WITHHOLDING = ("refusal", "evasive")


# --- collecting (T+45, or a notebook against a runner) -----------------------------------------------


def collect_difference_reports(
    client: BeaconClient,
    job_ids: Iterable[str],
    *,
    public_keys: Sequence[str],
    vkeys: Sequence[str],
    out_dir: Path,
) -> list[dict[str, Any]]:
    """Fetch, verify and save each job's difference report and the answers it compares.

    Saves ``<job_id>.json`` (the signed report, verbatim) and ``<job_id>.answers.json`` (each
    execution's output and classification evidence, from ``GET /api/v1/executions/{id}``) under
    ``out_dir``, and returns one row per job for the :data:`TABLE` table. A job without a report
    gets a row saying why (``problem``), never a silent gap.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    listed = _listed_diffs(client)
    rows: list[dict[str, Any]] = []
    for job_id in job_ids:
        row: dict[str, Any] = {
            "job_id": job_id,
            "report_id": None,
            "file": None,
            "answers_file": None,
            "leaf_index": (listed.get(job_id) or {}).get("leaf_index"),
            "signature_verified": False,
            "signed_by": None,
            "inclusion_verified": False,
            "checkpoint_size": None,
            "status": (listed.get(job_id) or {}).get("status"),
            "problem": None,
        }
        rows.append(row)
        try:
            report = client.diff(job_id)
        except BeaconAPIError as exc:
            row["problem"] = f"no difference report: {exc.code or exc.status}"
            continue
        except BeaconError as exc:
            row["problem"] = f"cannot fetch the difference report: {exc}"
            continue
        row["report_id"] = report.get("id")
        row["status"] = report.get("status")
        path = out_dir / f"{job_id}.json"
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        row["file"] = str(path)
        problems = []
        try:
            row["signed_by"] = verify_runner_signature(report, public_keys)
            row["signature_verified"] = True
        except EvidenceError as exc:
            problems.append(str(exc))
        if row["leaf_index"] is None:
            problems.append("the runner lists no log leaf for this report")
        else:
            try:
                proof = client.inclusion_proof(int(row["leaf_index"]))
                signed = verify_receipt_inclusion(
                    jcs(report), int(row["leaf_index"]), proof["proof"], proof["checkpoint"], vkeys
                )
                row["inclusion_verified"] = True
                row["checkpoint_size"] = signed.size
            except (EvidenceError, BeaconError, KeyError, ValueError) as exc:
                problems.append(f"log leaf {row['leaf_index']}: {exc}")
        answers = [_answer(client, receipt) for receipt in report.get("receipts") or []]
        answers_path = out_dir / f"{job_id}.answers.json"
        answers_path.write_text(json.dumps(answers, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        row["answers_file"] = str(answers_path)
        row["problem"] = "; ".join(problems) or None
    return rows


def _listed_diffs(client: BeaconClient) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        page = client.diffs(limit=100, offset=offset)
        for entry in page.get("diffs", []):
            out[str(entry["job_id"])] = entry
        offset += len(page.get("diffs", []))
        if not page.get("diffs") or offset >= int(page.get("total") or 0):
            return out


def _answer(client: BeaconClient, receipt: Mapping[str, Any]) -> dict[str, Any]:
    execution_id = str(receipt.get("execution_id"))
    try:
        execution = client.execution(execution_id)
    except BeaconError as exc:
        return {"execution_id": execution_id, "region": receipt.get("region"), "problem": str(exc)}
    return {
        key: execution.get(key)
        for key in (
            "id",
            "region",
            "model",
            "question_id",
            "variant",
            "status",
            "backend",
            "output",
            "output_hash",
            "error_code",
            "classification",
            "receipt_id",
            "leaf_index",
        )
    } | {"execution_id": execution_id}


# --- loading (a run folder) ----------------------------------------------------------------------------


@dataclass
class JobFindings:
    """One job's signed difference report, the answers it compares, and how it was verified."""

    job_id: str
    report: dict[str, Any]
    answers: list[dict[str, Any]] = field(default_factory=list)
    file: str | None = None
    """The saved report, relative to the run folder (the figures link to it)."""
    leaf_index: int | None = None
    signature_verified: bool = False
    inclusion_verified: bool = False
    checkpoint_size: int | None = None
    phase: str | None = None

    @property
    def title(self) -> str:
        benchmark = (self.report.get("benchmark") or {}).get("name") or "job"
        return f"{benchmark} · {self.job_id}"


def load_findings(run_dir: Path, summary: Mapping[str, Any] | None = None) -> list[JobFindings]:
    """Every difference report a phase of the run saved (the rows of its :data:`TABLE` table).

    Reads the phases' results from ``summary`` (``summary.json`` of a ``beacon day1`` run) or, without
    one, from ``results/*.json`` (phases run by hand in JupyterLab).
    """
    out: list[JobFindings] = []
    for phase_id, results, results_file in _phase_documents(run_dir, summary):
        for row in (results.get("tables") or {}).get(TABLE, []):
            report_path = _resolve(row.get("file"), run_dir, results_file.parent)
            if report_path is None:
                continue
            try:
                report = json.loads(report_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            answers_path = _resolve(row.get("answers_file"), run_dir, results_file.parent)
            answers: list[dict[str, Any]] = []
            if answers_path is not None:
                try:
                    answers = list(json.loads(answers_path.read_text(encoding="utf-8")))
                except (OSError, json.JSONDecodeError, TypeError):
                    answers = []
            out.append(
                JobFindings(
                    job_id=str(row["job_id"]),
                    report=report,
                    answers=answers,
                    file=os.path.relpath(report_path, run_dir),
                    leaf_index=row.get("leaf_index"),
                    signature_verified=bool(row.get("signature_verified")),
                    inclusion_verified=bool(row.get("inclusion_verified")),
                    checkpoint_size=row.get("checkpoint_size"),
                    phase=phase_id,
                )
            )
    return out


def _phase_documents(
    run_dir: Path, summary: Mapping[str, Any] | None
) -> Iterable[tuple[str, Mapping[str, Any], Path]]:
    if summary is None and (run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            summary = None
    if summary is not None:
        for phase in summary.get("phases", []):
            results_file = run_dir / str(phase.get("results_path") or "results/phase.json")
            yield str(phase.get("id")), phase.get("results") or {}, results_file
        return
    for path in sorted((run_dir / "results").glob("*.json")):
        try:
            document = load_phase_results(path)
        except ValueError:
            continue
        yield str(document.get("phase")), document, path


def _resolve(value: Any, run_dir: Path, results_dir: Path) -> Path | None:
    """A saved file's path: absolute, relative to the results file, or to the run folder."""
    if not value:
        return None
    path = Path(str(value))
    candidates = [path] if path.is_absolute() else [results_dir / path, run_dir / path]
    if path.is_absolute() and not path.is_file():  # a run folder moved since: look for it inside
        parts = path.parts
        candidates += [run_dir.joinpath(*parts[i:]) for i in range(1, len(parts))]
    return next((c for c in candidates if c.is_file()), None)


# --- tables -----------------------------------------------------------------------------------------


def item_label(model: Any, question_id: Any, variant: Any, *, models: int = 1) -> str:
    """How a figure names an item: ``question [variant]`` (and the model, when there are several)."""
    label = f"{question_id} [{variant}]"
    return f"{label} {model}" if models > 1 else label


def _evidence_summary(classification: Mapping[str, Any] | None) -> str:
    """The classifier's evidence in a line: rules matched (with the text), flagged sentences, loops."""
    if not classification:
        return ""
    evidence = classification.get("evidence") or {}
    parts = []
    if evidence.get("reason"):
        parts.append(str(evidence["reason"]))
    for rule in evidence.get("rules") or []:
        matched = rule.get("match") or rule.get("matched") or ""
        parts.append(
            f"rule {rule.get('rule') or rule.get('id')} ({rule.get('label')}): “{str(matched)[:60]}”"
        )
    for sentence in (evidence.get("flagged_sentences") or [])[:2]:
        parts.append(
            f"flagged as {sentence.get('class')} ({sentence.get('share')}): “{str(sentence.get('text'))[:80]}”"
        )
    if evidence.get("hedged"):
        parts.append("hedged")
    if evidence.get("repeated_share"):
        parts.append(f"repeated share {evidence['repeated_share']}")
    if classification.get("reason"):
        parts.append(str(classification["reason"]))
    return "; ".join(parts)


def excerpt(text: Any, limit: int = EXCERPT_CHARS) -> str:
    """The start of an answer, on one line."""
    if not isinstance(text, str):
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def answers_frame(job: JobFindings) -> pd.DataFrame:
    """Per item and region: the report's class and confidence, the classifier's evidence, an excerpt.

    ``output_matches_report`` is whether the saved answer's SHA-256 is the hash the signed report
    compared (None when the report did not compare that answer, e.g. a failed execution).
    """
    by_execution = {str(a.get("execution_id") or a.get("id")): a for a in job.answers}
    hashes: dict[str, str] = {}
    for comparison in job.report.get("comparisons") or []:
        for side in ("lhs", "rhs"):
            if comparison.get(f"{side}_execution_id") and comparison.get(f"{side}_output_hash"):
                hashes[str(comparison[f"{side}_execution_id"])] = str(comparison[f"{side}_output_hash"])
    rows = []
    for item in job.report.get("items") or []:
        for region, cls in sorted((item.get("classes") or {}).items()):
            execution_id = str(cls.get("execution_id"))
            answer = by_execution.get(execution_id, {})
            output = answer.get("output")
            signed_hash = hashes.get(execution_id)
            rows.append(
                {
                    "job_id": job.job_id,
                    "model": item.get("model"),
                    "question_id": item.get("question_id"),
                    "variant": item.get("variant"),
                    "category": item.get("category"),
                    "region": region,
                    "class": cls.get("label"),
                    "confidence": cls.get("confidence"),
                    "factual": (item.get("factual") or {}).get(region),
                    "evidence": _evidence_summary(answer.get("classification")),
                    "excerpt": excerpt(output),
                    "execution_id": execution_id,
                    "output_matches_report": None
                    if signed_hash is None or output is None
                    else signed_hash
                    in (f"sha256:{sha256_hex(str(output).encode())}", sha256_hex(str(output).encode())),
                }
            )
    return pd.DataFrame(rows)


def similarity_frame(job: JobFindings) -> pd.DataFrame:
    """Per item and pair of regions: semantic similarity, lexical measures, the comparison class."""
    rows = []
    for c in job.report.get("comparisons") or []:
        lexical = c.get("lexical") or {}
        rows.append(
            {
                "job_id": job.job_id,
                "model": c.get("model"),
                "question_id": c.get("question_id"),
                "variant": c.get("variant"),
                "pair": f"{c.get('lhs_region')}–{c.get('rhs_region')}",
                "lhs_region": c.get("lhs_region"),
                "rhs_region": c.get("rhs_region"),
                "similarity": c.get("similarity"),
                "jaccard": lexical.get("jaccard"),
                "diff_ratio": lexical.get("diff_ratio"),
                "classification": c.get("classification"),
                "lhs_class": c.get("lhs_class"),
                "rhs_class": c.get("rhs_class"),
                "reasons": ", ".join(c.get("reasons") or []),
                "summary": c.get("diff_summary"),
            }
        )
    return pd.DataFrame(rows)


def refusal_frame(jobs: Sequence[JobFindings]) -> pd.DataFrame:
    """Per region and model, over every report: analysed answers, refusals, evasions and their rates.

    Counts the signed reports' classes (technical errors are not analysed answers, as in
    docs/analysis.md).
    """
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for job in jobs:
        for item in job.report.get("items") or []:
            for region, cls in (item.get("classes") or {}).items():
                key = (str(region), str(item.get("model")))
                entry = counts.setdefault(key, {"executions": 0, "analysed": 0, "refusal": 0, "evasive": 0})
                entry["executions"] += 1
                label = cls.get("label")
                if label == "technical_error":
                    continue
                entry["analysed"] += 1
                if label in WITHHOLDING:
                    entry[str(label)] += 1
    rows = []
    for (region, model), entry in sorted(counts.items()):
        n = entry["analysed"]
        rows.append(
            {
                "region": region,
                "model": model,
                **entry,
                "refusal_rate": entry["refusal"] / n if n else None,
                "evasion_rate": entry["evasive"] / n if n else None,
                "withholding_rate": (entry["refusal"] + entry["evasive"]) / n if n else None,
            }
        )
    return pd.DataFrame(rows)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested document as ``{"a.b.c": scalar}`` (lists of numbers kept as one value)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        return {prefix: json.dumps(value, ensure_ascii=False, default=str)}
    return {prefix: value}


def metrics_frame(job: JobFindings) -> pd.DataFrame:
    """Every metric of the report's ``metrics`` (whatever the analysis adds), with its finding's level."""
    levels = {f.get("metric"): f.get("level") for f in job.report.get("findings") or []}
    rows = [
        {"job_id": job.job_id, "metric": name, "value": _cell(value), "level": levels.get(name.split(".")[0])}
        for name, value in flatten(job.report.get("metrics") or {}).items()
    ]
    return pd.DataFrame(rows)


def attribution_frame(job: JobFindings) -> pd.DataFrame:
    """Prompt- versus deployment-induced differences: the report's ``attribution``, flattened."""
    return pd.DataFrame(
        [
            {"job_id": job.job_id, "field": name, "value": _cell(value)}
            for name, value in flatten(job.report.get("attribution") or {}).items()
        ]
    )


def report_findings_frame(job: JobFindings) -> pd.DataFrame:
    """The report's own findings (metric, value, level, text), worst first."""
    order = {"alert": 0, "warning": 1, "notice": 2, "info": 3}
    rows = [
        {
            "job_id": job.job_id,
            "level": f.get("level"),
            "metric": f.get("metric"),
            "value": _cell(f.get("value")),
            "text": f.get("text"),
        }
        for f in job.report.get("findings") or []
    ]
    return pd.DataFrame(sorted(rows, key=lambda r: order.get(str(r["level"]), 9)))


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)
    return value


def attribution_sentence(job: JobFindings) -> str:
    """Which differences the job can show: deployment-induced, prompt-induced, or both (with a control)."""
    attribution = job.report.get("attribution") or {}
    variants = attribution.get("variants") or sorted(
        {str(i.get("variant")) for i in job.report.get("items") or []}
    )
    variants = list(variants)
    if variants == ["neutral"]:
        return "Every region got the same prompt: differences are deployment-induced."
    if variants == ["region"]:
        return (
            "Only the region prompt was run: differences may come from the prompt as much as from the "
            "deployment (no neutral control)."
        )
    effect = attribution.get("prompt_effect") or {}
    if effect:
        parts = [f"{k} {v:+.3f}" for k, v in effect.items() if isinstance(v, int | float)]
        return "Neutral control and region prompt both ran; the prompt's effect (region − neutral): " + (
            ", ".join(parts) or "see the table"
        )
    return f"Prompt variants: {', '.join(variants) or 'none recorded'}."


# --- figures ---------------------------------------------------------------------------------------


def similarity_heatmap(similarity: pd.DataFrame, title: str = "") -> bytes | None:
    """Semantic similarity per item (rows) and pair of regions (columns), each cell annotated."""
    if similarity.empty or similarity["similarity"].isna().all():
        return None
    models = similarity["model"].nunique()
    frame = similarity.assign(
        item=[item_label(r.model, r.question_id, r.variant, models=models) for r in similarity.itertuples()]
    )
    grid = frame.pivot_table(index="item", columns="pair", values="similarity", aggfunc="mean")
    classes = frame.pivot_table(index="item", columns="pair", values="classification", aggfunc="first")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * grid.shape[1] + 3.5), 0.42 * grid.shape[0] + 1.6))
    image = ax.imshow(grid.to_numpy(dtype=float), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = grid.iat[i, j]
            if pd.isna(value):
                continue
            mark = {"content-high-salience": " !", "content": " *"}.get(str(classes.iat[i, j]), "")
            ax.text(
                j,
                i,
                f"{value:.2f}{mark}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value < 0.6 else "black",
            )
    ax.set_xticks(range(grid.shape[1]), list(grid.columns), fontsize=8)
    ax.set_yticks(range(grid.shape[0]), list(grid.index), fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.04, label="semantic similarity")
    ax.set_title(title or "Similarity per question and region pair (* content, ! high salience)", fontsize=10)
    return png(fig)


def refusal_rates_plot(rates: pd.DataFrame) -> bytes | None:
    """Refusal and evasion rate per region and model (stacked: together the withholding rate)."""
    rows = rates.dropna(subset=["withholding_rate"]) if not rates.empty else rates
    if rows.empty:
        return None
    labels = [f"{r.region}\n{r.model}" for r in rows.itertuples()]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2), 3.6))
    positions = range(len(rows))
    ax.bar(positions, rows["refusal_rate"], color="#c62828", label="refusal")
    ax.bar(positions, rows["evasion_rate"], bottom=rows["refusal_rate"], color="#ffb300", label="evasive")
    for position, row in zip(positions, rows.itertuples(), strict=True):
        ax.text(position, float(row.withholding_rate) + 0.02, f"n={row.analysed}", ha="center", fontsize=8)
    if not rows["withholding_rate"].astype(float).any():
        ax.text(
            (len(rows) - 1) / 2,
            0.5,
            f"no refusal or evasion in {int(rows['analysed'].sum())} analysed answers",
            ha="center",
            fontsize=10,
            color="#616161",
        )
    ax.set_xticks(list(positions), labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of analysed answers")
    ax.set_title("Refusal and evasion rate per region and model")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


# --- the report's section -------------------------------------------------------------------------------


def section_context(run_dir: Path, summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the report's findings section shows (figures written to ``plots/``), or {"jobs": []}."""
    jobs = load_findings(run_dir, summary)
    plot_dir = run_dir / "plots"
    out_jobs = []
    for index, job in enumerate(jobs):
        similarity = similarity_frame(job)
        heatmap = similarity_heatmap(similarity, f"{job.title}: similarity per question and region pair")
        figure = None
        if heatmap is not None:
            plot_dir.mkdir(exist_ok=True)
            name = f"findings-similarity-{index + 1}.png"
            (plot_dir / name).write_bytes(heatmap)
            figure = heatmap
        out_jobs.append(
            {
                "job": job,
                "report": job.report,
                "heatmap": figure,
                "answers": answers_frame(job),
                "similarity": similarity,
                "metrics": metrics_frame(job),
                "attribution": attribution_frame(job),
                "attribution_sentence": attribution_sentence(job),
                "report_findings": report_findings_frame(job),
            }
        )
    rates = refusal_frame(jobs)
    refusal_png = refusal_rates_plot(rates)
    if refusal_png is not None:
        plot_dir.mkdir(exist_ok=True)
        (plot_dir / "findings-refusal-rates.png").write_bytes(refusal_png)
    return {"jobs": out_jobs, "rates": rates, "refusal_png": refusal_png}
