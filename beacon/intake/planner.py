"""The planner: a verified JobSpec → its executions, one per (region, model, question, variant).

Pure and deterministic: the same spec always yields the same executions with the same ids, so a
redelivered message or a repeated plan can never create a second row (the database's unique key
(job_id, region, model, question_id, variant) backs this up).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from beacon.benchmark.questions import CONTAINER_QUESTION, all_questions, set_for_mode
from beacon.benchmark.registry import BENCHMARKS, benchmark_named
from beacon.models.jobspec import JobSpec

ContainerCapability = Callable[[str], tuple[bool, str]]
"""Region → (whether its backend isolates a JobSpec's container, the backend's name)."""


class UnplannableJobSpec(ValueError):
    """A JobSpec that cannot be planned into executions; ``code`` is the problem code intake answers with (400)."""

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
    """The question ids a job asks (each once), as its benchmark's definition plans them."""
    benchmark = benchmark_named(spec.benchmark.name)
    if benchmark is None:
        raise UnplannableJobSpec(
            "unknown_benchmark",
            f"unknown benchmark {spec.benchmark.name!r}; known: {', '.join(BENCHMARKS)}",
            "benchmark.name",
        )
    if benchmark.pseudo_question is not None:
        if spec.questions:
            raise UnplannableJobSpec(
                "invalid_questions", f"the {benchmark.name} benchmark takes no questions", "questions"
            )
        return [benchmark.pseudo_question]
    known = all_questions()
    if spec.questions:
        if spec.options.only_questions is not None:
            raise UnplannableJobSpec(
                "invalid_questions",
                "options.only_questions narrows the modes' question sets; a job that lists its questions needs none",
                "options.only_questions",
            )
        asked = list(spec.questions)
    elif (
        benchmark.asks_mode_sets
    ):  # each mode's versioned set, in order; an id in two sets (one text) is asked once
        asked = [q for mode in spec.modes for q in set_for_mode(mode).ids]
        asked = _narrowed(asked, spec)
    else:
        asked = list(benchmark.default_questions)
    for index, question_id in enumerate(asked):
        if question_id not in known:
            raise UnplannableJobSpec(
                "unknown_question",
                f"unknown question id {question_id!r}; GET /api/v1/questions lists the known ones",
                f"questions.{index}",
            )
    return list(dict.fromkeys(asked))


def _narrowed(asked: list[str], spec: JobSpec) -> list[str]:
    """``options.only_questions``: the mode sets' questions narrowed to those ids (a bounded run)."""
    only = spec.options.only_questions
    if only is None:
        return asked
    for index, question_id in enumerate(only):
        if question_id not in asked:
            raise UnplannableJobSpec(
                "unknown_question",
                f"options.only_questions names {question_id!r}, which the job's question sets "
                f"({', '.join(spec.modes)}) do not ask",
                f"options.only_questions.{index}",
            )
    wanted = set(only)
    return [q for q in asked if q in wanted]


def is_command_job(spec: JobSpec) -> bool:
    """A JobSpec that asks to run its own container command (the Go runner's ``benchmark.container.command``)."""
    container = spec.benchmark.container
    return container is not None and bool(container.command)


def plan_container_job(
    spec: JobSpec, regions: list[str], capability: ContainerCapability | None
) -> list[PlannedExecution]:
    """One execution per region, each on a backend that isolates containers; UnplannableJobSpec otherwise.

    A JobSpec's command is never run on the runner's host or next to a model server: only a backend
    whose executor class declares ``isolates_containers`` (a Golem provider's VM) may take it.
    """
    container = spec.benchmark.container
    assert container is not None
    refused = []
    for region in regions:
        isolates, backend = capability(region) if capability else (False, "unknown")
        if not isolates:
            refused.append(f"{region} ({backend})")
    if refused:
        raise UnplannableJobSpec(
            "container_isolation_unavailable",
            f"this JobSpec runs a container command ({' '.join(container.command or [])[:80]!r}); the backends "
            f"of {', '.join(refused)} cannot isolate a container, and this runner never runs a JobSpec's "
            "command on its own host. Submit it to regions served by golem (BEACON_REGION_BACKENDS)",
            "benchmark.container.command",
        )
    image = f"{container.image}:{container.tag}" if container.tag else container.image
    return [
        PlannedExecution(
            execution_id(spec.id, r, image, CONTAINER_QUESTION, "neutral"),
            spec.id,
            r,
            image,
            CONTAINER_QUESTION,
            "neutral",
        )
        for r in regions
    ]


def plan(
    spec: JobSpec,
    *,
    default_regions: list[str],
    default_models: list[str],
    container_capability: ContainerCapability | None = None,
) -> list[PlannedExecution]:
    """Expand a job into executions (regions × models × questions × prompt variants)."""
    regions = spec.constraints.regions or default_regions
    if not regions:
        raise UnplannableJobSpec(
            "no_regions", "the job names no region and no default is configured", "constraints.regions"
        )
    if spec.constraints.min_regions > len(regions):
        raise UnplannableJobSpec(
            "invalid_constraints",
            f"min_regions is {spec.constraints.min_regions} but only {len(regions)} region(s) requested",
            "constraints.min_regions",
        )
    if is_command_job(spec):
        return plan_container_job(spec, regions, container_capability)
    models = spec.model_ids or default_models
    if not models:
        raise UnplannableJobSpec("no_models", "the job names no model and no default is configured", "models")
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


def retry_budget(spec: JobSpec) -> int | None:
    """The messages' ``max_attempts`` for a spec that sets ``constraints.max_retries`` (else None)."""
    retries = spec.constraints.max_retries
    return None if retries is None else retries + 1
