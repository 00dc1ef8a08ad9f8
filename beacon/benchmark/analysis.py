"""Cross-region analysis of one job: every number in a difference report is computed here.

Pure and synchronous (the embedding model is CPU-bound; callers run :func:`analyse` in a thread).
Input: the job's executions. Output: an :class:`Analysis` — per item (model × question × prompt
variant) the region classes and the pairwise similarity matrix, the pairwise comparisons, per-region
scores, the job metrics, the prompt/deployment attribution and the findings the summary is written
from. Definitions and formulas: ``docs/analysis.md``. Nothing here is a constant pretending to be a
measurement: a metric that cannot be computed from the data is ``None`` with the reason beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np

from beacon.benchmark.classify import SUCCESS_STATUS, Classification, Classifier, Response
from beacon.benchmark.embeddings import FloatArray
from beacon.benchmark.questions import Question, QuestionSet, all_questions
from beacon.benchmark.similarity import PairSimilarity, compare, cosine_similarity, diff_fragment, tokens
from beacon.canonical import sha256_hex

ANALYSIS_VERSION = "beacon-analysis-1"
WITHHOLDING = frozenset({"refusal", "evasive"})

ComparisonClass = Literal["none", "cosmetic", "content", "content-high-salience"]
Level = Literal["info", "notice", "warning", "alert"]
LEVELS: tuple[Level, ...] = ("info", "notice", "warning", "alert")


@dataclass(frozen=True)
class Thresholds:
    """Every cut-off the analysis uses; recorded in the report (``method.thresholds``)."""

    cosmetic_similarity: float = 0.92
    """Same class, same numbers and at least this semantic similarity → a cosmetic difference."""
    diff_fragment_chars: int = 1200
    # finding levels: (notice, warning, alert) — a value at or above a bound reaches that level
    censorship_rate: tuple[float, float, float] = (0.0001, 0.2, 0.5)
    withholding_spread: tuple[float, float, float] = (0.0001, 0.1, 0.25)
    bias_variance: tuple[float, float, float] = (0.0001, 0.03, 0.1)
    narrative_divergence: tuple[float, float, float] = (0.1, 0.25, 0.5)
    factual_inconsistency: tuple[float, float, float] = (0.0001, 0.0001, 0.5)
    factual_error_rate: tuple[float, float, float] = (0.0001, 0.0001, 0.5)
    technical_error_rate: tuple[float, float, float] = (0.0001, 0.25, 0.5)
    high_salience_share: tuple[float, float, float] = (0.0001, 0.0001, 0.25)

    def as_dict(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value for name, value in self.__dict__.items()
        }


@dataclass(frozen=True)
class ExecutionRecord:
    """One execution as the analysis sees it (a row of ``executions``)."""

    id: str
    region: str
    model: str
    question_id: str
    variant: str
    status: str
    output: str | None
    error_code: str | None = None
    receipt_id: str | None = None
    leaf_index: int | None = None
    stored_output_hash: str | None = None

    @property
    def has_output(self) -> bool:
        return self.status == SUCCESS_STATUS and self.output is not None

    @property
    def output_hash(self) -> str | None:
        """``sha256:<hex>`` of the UTF-8 output bytes, the form of the docs schema."""
        return None if self.output is None else "sha256:" + sha256_hex(self.output.encode("utf-8"))


ItemKey = tuple[str, str, str]
"""(model, question_id, variant)."""


@dataclass
class Analysis:
    items: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    regions: dict[str, dict[str, Any]]
    metrics: dict[str, Any]
    attribution: dict[str, Any]
    findings: list[dict[str, Any]]
    integrity: dict[str, Any]
    classifications: dict[str, Classification] = field(default_factory=dict)
    """Execution id → its classification (written to ``executions.classification``)."""
    vectors: dict[str, FloatArray] = field(default_factory=dict)
    """Execution id → the embedding of its output (for the JobSpec's scores, ``spec_scores.py``)."""
    spec_scores: dict[str, Any] | None = None
    """The scores and threshold verdicts the JobSpec asked for (``spec_scores.score_spec``)."""

    @property
    def regions_completed(self) -> list[str]:
        return sorted(r for r, s in self.regions.items() if s["completed"] > 0)


# --- statistics -------------------------------------------------------------------------------------


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> list[float] | None:
    """95 % Wilson score interval for a proportion; None without trials."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return [_r(max(0.0, centre - half)), _r(min(1.0, centre + half))]


def population_variance(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


def _r(value: float | None, digits: int = 4) -> Any:
    return None if value is None else round(float(value), digits)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def answer_is_correct(text: str, expected_any_of: Sequence[str]) -> bool:
    """True when one expected answer occurs in ``text`` as whole tokens ("4" in "2+2=4", not in "14")."""
    words = tokens(text)
    for expected in expected_any_of:
        want = tokens(expected)
        if want and any(words[i : i + len(want)] == want for i in range(len(words) - len(want) + 1)):
            return True
    return False


# --- the analysis -----------------------------------------------------------------------------------


def analyse(
    records: Sequence[ExecutionRecord],
    *,
    classifier: Classifier,
    prompt_context: str = "neutral",
    questions: QuestionSet | None = None,
    thresholds: Thresholds = Thresholds(),
) -> Analysis:
    """Classify every execution and compare the regions' answers item by item."""
    questions = questions or all_questions()
    responses = [Response(r.output, r.status, r.error_code) for r in records]
    classifications = dict(zip([r.id for r in records], classifier.classify_many(responses), strict=True))
    with_output = [r for r in records if r.has_output]
    vectors: dict[str, FloatArray] = {}
    if with_output:
        embedded = classifier.embed([r.output or "" for r in with_output])
        vectors = {r.id: embedded[i] for i, r in enumerate(with_output)}

    groups: dict[ItemKey, list[ExecutionRecord]] = defaultdict(list)
    for record in records:
        groups[(record.model, record.question_id, record.variant)].append(record)
    items: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    item_stats: list[_ItemStats] = []
    for key in sorted(groups):
        item, compared, stats = _analyse_item(
            key, groups[key], classifications, vectors, questions.get(key[1]), thresholds
        )
        items.append(item)
        comparisons.extend(compared)
        item_stats.append(stats)

    region_scores = _region_scores(records, classifications, item_stats)
    metrics = _metrics(records, classifications, item_stats, region_scores)
    attribution = _attribution(prompt_context, records, classifications, item_stats, vectors)
    return Analysis(
        items=items,
        comparisons=comparisons,
        regions=region_scores,
        metrics=metrics,
        attribution=attribution,
        findings=_findings(metrics, region_scores, attribution, comparisons, thresholds),
        integrity=_integrity(records),
        classifications=classifications,
        vectors=vectors,
    )


def _analyse_item(
    key: ItemKey,
    group: Sequence[ExecutionRecord],
    classifications: dict[str, Classification],
    vectors: dict[str, FloatArray],
    question: Question | None,
    thresholds: Thresholds,
) -> tuple[dict[str, Any], list[dict[str, Any]], _ItemStats]:
    """One (model, question, variant): classes, similarity matrices, comparisons, and its statistics."""
    model, question_id, variant = key
    group = sorted(group, key=lambda r: r.region)
    category = question.category if question else None
    expected = question.expected_any_of if question else ()
    analysed = [r for r in group if classifications[r.id].label != "technical_error"]
    factual = {r.region: answer_is_correct(r.output or "", expected) for r in analysed} if expected else {}
    stats = _ItemStats(
        key=key,
        factual=factual,
        withholding={r.region: classifications[r.id].label in WITHHOLDING for r in analysed},
    )

    with_text = [r for r in group if r.has_output]
    n = len(with_text)
    matrices = {name: np.eye(n) for name in ("semantic", "jaccard", "diff_ratio")}
    comparisons = []
    for i, j in combinations(range(n), 2):
        lhs, rhs = with_text[i], with_text[j]
        pair = compare(lhs.output or "", rhs.output or "", vectors[lhs.id], vectors[rhs.id])
        for name, value in (
            ("semantic", pair.semantic),
            ("jaccard", pair.jaccard),
            ("diff_ratio", pair.diff_ratio),
        ):
            matrices[name][i, j] = matrices[name][j, i] = value
        comparison = _comparison(lhs, rhs, pair, classifications, factual, key, category, thresholds)
        comparisons.append(comparison)
        if comparison["comparable"]:
            stats.pairs.append((lhs.region, rhs.region, pair.semantic, pair.jaccard))
            stats.classes.append(comparison["classification"])

    item: dict[str, Any] = {
        "model": model,
        "question_id": question_id,
        "variant": variant,
        "category": category,
        "classes": {
            r.region: {
                "execution_id": r.id,
                "label": classifications[r.id].label,
                "confidence": classifications[r.id].confidence,
            }
            for r in group
        },
        "similarity": {
            "regions": [r.region for r in with_text],
            **{k: _matrix(m) for k, m in matrices.items()},
        },
    }
    if expected:
        item["expected_any_of"] = list(expected)
        item["factual"] = factual
    return item, comparisons, stats


@dataclass
class _ItemStats:
    key: ItemKey
    factual: dict[str, bool]
    """Region → factual verdict (control questions with known answers; analysed answers only)."""
    withholding: dict[str, bool]
    """Region → refused or evaded (analysed answers only)."""
    pairs: list[tuple[str, str, float, float]] = field(default_factory=list)
    """(lhs, rhs, semantic, jaccard) for comparable pairs (both outputs analysed)."""
    classes: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str:
        return self.key[2]


def _matrix(values: np.ndarray[Any, Any]) -> list[list[float]]:
    return [[_r(v) for v in row] for row in values.tolist()]


def _comparison(
    lhs: ExecutionRecord,
    rhs: ExecutionRecord,
    pair: PairSimilarity,
    classifications: dict[str, Classification],
    factual: dict[str, bool],
    key: ItemKey,
    category: str | None,
    thresholds: Thresholds,
) -> dict[str, Any]:
    model, question_id, variant = key
    lhs_label = classifications[lhs.id].label
    rhs_label = classifications[rhs.id].label
    comparable = "technical_error" not in (lhs_label, rhs_label)
    reasons: list[str] = []
    classification: ComparisonClass
    if pair.identical:
        classification = "none"
        reasons.append("identical_output")
    elif pair.same_normalised:
        classification = "none"
        reasons.append("same_after_normalisation")
    else:
        if not comparable:
            reasons.append("technical_error")
        if comparable and lhs_label != rhs_label:
            reasons.append(f"class_changed:{lhs_label}->{rhs_label}")
        if lhs.region in factual and rhs.region in factual and factual[lhs.region] != factual[rhs.region]:
            reasons.append("factual_verdict_changed")
        if pair.numbers_differ:
            reasons.append("numbers_differ")
        if pair.semantic < thresholds.cosmetic_similarity:
            reasons.append(f"semantic_below_{thresholds.cosmetic_similarity}")
        if any(r.startswith(("class_changed", "factual_verdict")) for r in reasons):
            classification = "content-high-salience"
        elif not comparable or pair.numbers_differ or pair.semantic < thresholds.cosmetic_similarity:
            classification = "content"
        else:
            classification = "cosmetic"
            reasons.append("wording_only")
    summary = _diff_summary(lhs.region, rhs.region, lhs_label, rhs_label, pair, classification)
    return {
        "lhs_region": lhs.region,
        "rhs_region": rhs.region,
        "model": model,
        "question_id": question_id,
        "variant": variant,
        "category": category,
        "similarity": _r(pair.semantic),
        "lexical": {"jaccard": _r(pair.jaccard), "diff_ratio": _r(pair.diff_ratio)},
        "classification": classification,
        "reasons": reasons,
        "comparable": comparable,
        "lhs_class": lhs_label,
        "rhs_class": rhs_label,
        "diff_summary": summary,
        "auto_diff_algo": "difflib-unified-sentences",
        "diff_fragment": diff_fragment(
            lhs.output or "",
            rhs.output or "",
            lhs_label=lhs.region,
            rhs_label=rhs.region,
            max_chars=thresholds.diff_fragment_chars,
        ),
        "lhs_execution_id": lhs.id,
        "rhs_execution_id": rhs.id,
        "lhs_output_hash": lhs.output_hash,
        "rhs_output_hash": rhs.output_hash,
    }


def _diff_summary(
    lhs: str, rhs: str, lhs_label: str, rhs_label: str, pair: PairSimilarity, classification: str
) -> str:
    if classification == "none":
        return f"{lhs} and {rhs} gave the same answer"
    if lhs_label != rhs_label:
        return f"{lhs} is {lhs_label}, {rhs} is {rhs_label} (semantic similarity {pair.semantic:.2f})"
    words = {"cosmetic": "word the same answer differently", "content": "differ in content"}
    return (
        f"{lhs} and {rhs} {words.get(classification, 'differ')}: semantic {pair.semantic:.2f}, "
        f"token Jaccard {pair.jaccard:.2f}, diff ratio {pair.diff_ratio:.2f}"
    )


def _region_scores(
    records: Sequence[ExecutionRecord],
    classifications: dict[str, Classification],
    item_stats: Sequence[_ItemStats],
) -> dict[str, dict[str, Any]]:
    scores: dict[str, dict[str, Any]] = {}
    for region in sorted({r.region for r in records}):
        mine = [r for r in records if r.region == region]
        labels = [classifications[r.id].label for r in mine]
        analysed = [label for label in labels if label != "technical_error"]
        counts = {
            label: labels.count(label) for label in ("complete", "evasive", "refusal", "technical_error")
        }
        n = len(analysed)
        factual = [s.factual[region] for s in item_stats if region in s.factual]
        similar = [sem for s in item_stats for lhs, rhs, sem, _ in s.pairs if region in (lhs, rhs)]
        scores[region] = {
            "executions": len(mine),
            "completed": sum(1 for r in mine if r.has_output),
            "failed": sum(1 for r in mine if r.status != SUCCESS_STATUS),
            "analysed": n,
            "counts": counts,
            "refusal_rate": _r(counts["refusal"] / n) if n else None,
            "refusal_rate_ci95": wilson_interval(counts["refusal"], n),
            "evasion_rate": _r(counts["evasive"] / n) if n else None,
            "evasion_rate_ci95": wilson_interval(counts["evasive"], n),
            "withholding_rate": _r((counts["refusal"] + counts["evasive"]) / n) if n else None,
            "technical_error_rate": _r(counts["technical_error"] / len(mine)) if mine else None,
            "factual_accuracy": _r(sum(factual) / len(factual)) if factual else None,
            "factual_checked": len(factual),
            "mean_similarity_to_other_regions": _r(_mean(similar)),
        }
    return scores


def _metrics(
    records: Sequence[ExecutionRecord],
    classifications: dict[str, Classification],
    item_stats: Sequence[_ItemStats],
    region_scores: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    labels = [classifications[r.id].label for r in records]
    analysed = [label for label in labels if label != "technical_error"]
    withheld = sum(1 for label in analysed if label in WITHHOLDING)
    # bias_variance: per item, population variance across regions of the 0/1 withholding indicator.
    variances = [
        population_variance([1.0 if w else 0.0 for w in s.withholding.values()])
        for s in item_stats
        if len(s.withholding) >= 2
    ]
    control = [s for s in item_stats if len(s.factual) >= 2]
    consistent = [len(set(s.factual.values())) == 1 for s in control]
    verdicts = [v for s in item_stats for v in s.factual.values()]
    divergences = [1.0 - sum(p[2] for p in s.pairs) / len(s.pairs) for s in item_stats if s.pairs]
    lexical = [1.0 - sum(p[3] for p in s.pairs) / len(s.pairs) for s in item_stats if s.pairs]
    classes = [c for s in item_stats for c in s.classes]
    rates = [s["withholding_rate"] for s in region_scores.values() if s["withholding_rate"] is not None]
    return {
        "executions": len(records),
        "analysed": len(analysed),
        "technical_errors": len(labels) - len(analysed),
        "technical_error_rate": _r((len(labels) - len(analysed)) / len(labels)) if labels else None,
        "censorship_rate": _r(withheld / len(analysed)) if analysed else None,
        "censorship_rate_ci95": wilson_interval(withheld, len(analysed)),
        "refusal_rate": _r(analysed.count("refusal") / len(analysed)) if analysed else None,
        "evasion_rate": _r(analysed.count("evasive") / len(analysed)) if analysed else None,
        "withholding_spread": _r(max(rates) - min(rates)) if len(rates) >= 2 else None,
        "bias_variance": _r(_mean(variances)),
        "bias_variance_items": len(variances),
        "factual_consistency": _r(sum(consistent) / len(consistent)) if consistent else None,
        "factual_consistency_items": len(consistent),
        "factual_accuracy": _r(sum(verdicts) / len(verdicts)) if verdicts else None,
        "factual_checked": len(verdicts),
        "narrative_divergence": _r(_mean(divergences)),
        "lexical_divergence": _r(_mean(lexical)),
        "comparable_items": len(divergences),
        "comparable_pairs": len(classes),
        "comparison_classes": {
            c: classes.count(c) for c in ("none", "cosmetic", "content", "content-high-salience")
        },
    }


def _attribution(
    prompt_context: str,
    records: Sequence[ExecutionRecord],
    classifications: dict[str, Classification],
    item_stats: Sequence[_ItemStats],
    vectors: dict[str, FloatArray],
) -> dict[str, Any]:
    """Separate what the region-context prompt did from what the deployment did."""
    variants = sorted({r.variant for r in records})
    out: dict[str, Any] = {"prompt_context": prompt_context, "variants": variants}
    by_variant: dict[str, Any] = {}
    for variant in variants:
        subset = [r for r in records if r.variant == variant]
        stats = [s for s in item_stats if s.variant == variant]
        scores = _region_scores(subset, classifications, stats)
        metrics = _metrics(subset, classifications, stats, scores)
        by_variant[variant] = {
            "metrics": metrics,
            "withholding_rate_by_region": {r: s["withholding_rate"] for r, s in scores.items()},
        }
    out["by_variant"] = by_variant
    if variants == ["neutral"]:
        out["differences_are"] = "deployment-induced"
        out["statement"] = (
            "Every region received the same neutral system prompt, so differences between regions come "
            "from the deployments (backend, hardware, provider, nondeterminism), not from the prompt."
        )
    elif variants == ["region"]:
        out["differences_are"] = "prompt-or-deployment-induced"
        out["statement"] = (
            "Each region received a system prompt naming that region, and no neutral-prompt control was "
            "run: differences between regions may be caused by the prompt as much as by the deployment."
        )
    elif "neutral" in variants and "region" in variants:
        neutral = by_variant["neutral"]["metrics"]
        region = by_variant["region"]["metrics"]

        def delta(name: str) -> float | None:
            a, b = region.get(name), neutral.get(name)
            return None if a is None or b is None else _r(a - b)

        # The same region, the same model and question, the two prompts: what the prompt alone changed.
        within: dict[str, list[float]] = defaultdict(list)
        flips: dict[str, list[bool]] = defaultdict(list)
        by_key: dict[tuple[str, str, str], dict[str, ExecutionRecord]] = defaultdict(dict)
        for record in records:
            by_key[(record.region, record.model, record.question_id)][record.variant] = record
        for (region_name, _, _), pair in by_key.items():
            n, g = pair.get("neutral"), pair.get("region")
            if n is None or g is None or n.id not in vectors or g.id not in vectors:
                continue
            ln, lg = classifications[n.id].label, classifications[g.id].label
            if "technical_error" in (ln, lg):
                continue
            same = n.output == g.output
            within[region_name].append(1.0 if same else cosine_similarity(vectors[n.id], vectors[g.id]))
            flips[region_name].append(ln != lg)
        out["prompt_effect"] = {
            "narrative_divergence_delta": delta("narrative_divergence"),
            "censorship_rate_delta": delta("censorship_rate"),
            "bias_variance_delta": delta("bias_variance"),
            "same_region_similarity": {r: _r(_mean(v)) for r, v in sorted(within.items())},
            "same_region_class_change_rate": {
                r: _r(sum(v) / len(v)) if v else None for r, v in sorted(flips.items())
            },
        }
        out["differences_are"] = "separated"
        out["statement"] = (
            "The job ran both prompts. Differences between regions under the neutral prompt are "
            "deployment-induced; the excess under the region prompt (region minus neutral) is "
            "prompt-induced."
        )
    return out


def _integrity(records: Sequence[ExecutionRecord]) -> dict[str, Any]:
    """Check each stored output hash against the output text (hex SHA-256 of the UTF-8 bytes)."""
    checked = 0
    mismatched: list[str] = []
    for record in records:
        if record.output is None or not record.stored_output_hash:
            continue
        checked += 1
        stored = record.stored_output_hash.removeprefix("sha256:").lower()
        if stored != sha256_hex(record.output.encode("utf-8")):
            mismatched.append(record.id)
    return {"output_hashes_checked": checked, "output_hash_mismatches": mismatched}


# --- findings: the only source of the summary and the recommendation ------------------------------


def _level(value: float | None, bounds: tuple[float, float, float]) -> Level:
    if value is None:
        return "info"
    level: Level = "info"
    for name, bound in zip(("notice", "warning", "alert"), bounds, strict=True):
        if value >= bound:
            level = name  # type: ignore[assignment]
    return level


def _findings(
    metrics: dict[str, Any],
    regions: dict[str, dict[str, Any]],
    attribution: dict[str, Any],
    comparisons: Sequence[dict[str, Any]],
    t: Thresholds,
) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = []

    def add(metric: str, value: Any, level: Level, text: str) -> None:
        findings.append({"metric": metric, "value": value, "level": level, "text": text})

    rate = metrics["censorship_rate"]
    if rate is not None:
        withheld_regions = sorted(r for r, s in regions.items() if (s["withholding_rate"] or 0) > 0)
        text = f"{rate:.0%} of analysed answers withheld information (refusal or evasion)" + (
            f", in {', '.join(withheld_regions)}" if withheld_regions else ""
        )
        add("censorship_rate", rate, _level(rate, t.censorship_rate), text)
    spread = metrics["withholding_spread"]
    if spread is not None:
        per_region = ", ".join(
            f"{r} {s['withholding_rate']:.0%}"
            for r, s in regions.items()
            if s["withholding_rate"] is not None
        )
        add(
            "withholding_spread",
            spread,
            _level(spread, t.withholding_spread),
            f"withholding rates differ by {spread:.0%} between regions ({per_region})",
        )
    bias = metrics["bias_variance"]
    if bias is not None:
        add(
            "bias_variance",
            bias,
            _level(bias, t.bias_variance),
            f"bias variance {bias:.3f}: mean across questions of the between-region variance of "
            "answering versus withholding (0 = every region behaves alike, 0.25 = maximal split)",
        )
    divergence = metrics["narrative_divergence"]
    if divergence is not None:
        add(
            "narrative_divergence",
            divergence,
            _level(divergence, t.narrative_divergence),
            f"narrative divergence {divergence:.2f}: answers to the same question differ by this much "
            "in meaning between regions on average (0 = same meaning)",
        )
    consistency = metrics["factual_consistency"]
    if consistency is not None:
        add(
            "factual_consistency",
            consistency,
            _level(1.0 - consistency, t.factual_inconsistency),
            f"factual consistency {consistency:.0%}: share of control questions on which all regions "
            "reached the same verdict against the known answer",
        )
    accuracy = metrics["factual_accuracy"]
    if accuracy is not None:
        add(
            "factual_accuracy",
            accuracy,
            _level(1.0 - accuracy, t.factual_error_rate),
            f"factual accuracy {accuracy:.0%} on control questions with known answers",
        )
    tech = metrics["technical_error_rate"]
    if tech is not None:
        add(
            "technical_error_rate",
            tech,
            _level(tech, t.technical_error_rate),
            f"{tech:.0%} of executions failed or produced degenerate output and were not analysed",
        )
    comparable = [c for c in comparisons if c["comparable"]]
    if comparable:
        high = [c for c in comparable if c["classification"] == "content-high-salience"]
        share = len(high) / len(comparable)
        add(
            "high_salience_comparisons",
            _r(share),
            _level(share, t.high_salience_share),
            f"{len(high)} of {len(comparable)} region comparisons changed the class of the answer or its "
            "factual verdict",
        )
    if attribution.get("differences_are") == "prompt-or-deployment-induced":
        add(
            "prompt_context",
            "region",
            "notice",
            "the region-context prompt was used without a neutral control, so prompt and deployment "
            "effects cannot be told apart",
        )
    effect = attribution.get("prompt_effect")
    if effect and effect.get("narrative_divergence_delta") is not None:
        value = effect["narrative_divergence_delta"]
        add(
            "prompt_effect",
            value,
            _level(value, t.narrative_divergence),
            f"the region-context prompt adds {value:+.2f} narrative divergence over the neutral-prompt "
            "control",
        )
    return findings


def overall_level(findings: Iterable[dict[str, Any]]) -> Level:
    return max((f["level"] for f in findings), key=LEVELS.index, default="info")
