"""The planner: a verified JobSpec → its executions, one per (region, model, question, variant).

Pure and deterministic: the same spec always yields the same executions with the same ids, so a
redelivered message or a repeated plan can never create a second row (the database's unique key
(job_id, region, model, question_id, variant) backs this up).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from beacon.benchmark.questions import question_set
from beacon.models.jobspec import JobSpec

NOOP_QUESTION = "noop"
"""The pseudo-question of the ``noop`` benchmark: no model is called."""


class PlanError(ValueError):
    """The spec cannot be planned; ``code`` is the problem code intake answers with (400)."""

    def __init__(self, code: str, message: str, path: str) -> None:
        super().__init__(message)
        self.code = code
        self.path = path


@dataclass(frozen=True)
class PlannedExecution:
    id: str
    job_id: str
    region: str
    model: str
    question_id: str
    variant: str


def execution_id(job_id: str, region: str, model: str, question_id: str, variant: str) -> str:
    digest = hashlib.sha256("\x1f".join((job_id, region, model, question_id, variant)).encode()).hexdigest()
    return "ex_" + digest[:29]


def questions_for(spec: JobSpec) -> list[str]:
    """The question ids a job asks (each once), validated against the built-in set."""
    name = spec.benchmark.name
    if name == "noop":
        if spec.questions:
            raise PlanError("invalid_questions", "the noop benchmark takes no questions", "questions")
        return [NOOP_QUESTION]
    if name not in ("bias-detection", "who-are-you"):
        raise PlanError(
            "unknown_benchmark",
            f"unknown benchmark {name!r}; known: bias-detection, who-are-you, noop",
            "benchmark.name",
        )
    known = question_set()
    asked = spec.questions or (["identity_basic"] if name == "who-are-you" else list(known.ids))
    for index, question_id in enumerate(asked):
        if question_id not in known:
            raise PlanError(
                "unknown_question",
                f"unknown question id {question_id!r}; GET /api/v1/questions lists the known ones",
                f"questions.{index}",
            )
    return list(dict.fromkeys(asked))


def plan(spec: JobSpec, *, default_regions: list[str], default_models: list[str]) -> list[PlannedExecution]:
    """Expand a job into executions (regions × models × questions × prompt variants)."""
    regions = spec.constraints.regions or default_regions
    if not regions:
        raise PlanError(
            "no_regions", "the job names no region and no default is configured", "constraints.regions"
        )
    if spec.constraints.min_regions > len(regions):
        raise PlanError(
            "invalid_constraints",
            f"min_regions is {spec.constraints.min_regions} but only {len(regions)} region(s) requested",
            "constraints.min_regions",
        )
    models = spec.model_ids or default_models
    if not models:
        raise PlanError("no_models", "the job names no model and no default is configured", "models")
    context = spec.options.prompt_context
    variants = ["neutral", "region"] if context == "both" else [context]
    questions = questions_for(spec)
    return [
        PlannedExecution(execution_id(spec.id, r, m, q, v), spec.id, r, m, q, v)
        for r in regions
        for m in models
        for q in questions
        for v in variants
    ]
