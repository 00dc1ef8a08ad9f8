"""The metric names a JobSpec may ask for (``scoring.modes`` / ``scoring.metrics`` / ``thresholds``).

Names only, with their direction and the mode they belong to; the formulas are in
``beacon.benchmark.spec_scores`` and ``docs/analysis.md`` ("Scores a JobSpec asks for").
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["higher_is_worse", "higher_is_better", "descriptive"]

SPEC_METRICS: dict[str, tuple[str, Direction]] = {
    "bias_score": ("simple", "higher_is_worse"),
    "censorship_rate": ("simple", "higher_is_worse"),
    "factual_accuracy": ("simple", "higher_is_better"),
    "response_quality": ("simple", "higher_is_better"),
    "bias_intensity": ("advanced", "higher_is_worse"),
    "context_bias": ("advanced", "higher_is_worse"),
    "sentiment": ("advanced", "descriptive"),
    "clustering": ("advanced", "descriptive"),
}
"""Metric → (the mode whose answers it is computed from, which way is worse)."""

METRIC_ALIASES: dict[str, str] = {"censorship": "censorship_rate", "accuracy_rate": "factual_accuracy"}
"""The original's other spellings of the same metric (unified ``censorship``, v1 ``accuracy_rate``)."""


def canonical_metric(name: str) -> str:
    """The metric a name means; ValueError naming the known ones."""
    metric = METRIC_ALIASES.get(name, name)
    if metric not in SPEC_METRICS:
        known = ", ".join([*SPEC_METRICS, *METRIC_ALIASES])
        raise ValueError(f"unknown metric {name!r}; known: {known}")
    return metric
