"""From a claimed execution to the ExecutionRequest a backend runs.

The question text comes from the question tables (``find_question``), never the id (failure
mode 11); the system prompt from ``beacon.benchmark.prompts`` (the variant is recorded, never
hidden); decoding options from the JobSpec's ``options``.
"""

from __future__ import annotations

from beacon.benchmark.prompts import Variant, system_prompt
from beacon.benchmark.questions import CONTAINER_QUESTION, find_question, question_set
from beacon.benchmark.registry import definition_for
from beacon.executors.base import DecodingOptions, ExecutionRequest, PermanentExecutorError


def prompts_for(benchmark: str, question_id: str, variant: str, region: str) -> tuple[str | None, str | None]:
    """(system prompt, prompt) of one execution; (None, None) for a benchmark that calls no model (``noop``).

    Raises PermanentExecutorError ``unknown_question`` if the id is not in the question set.
    """
    if not definition_for(benchmark).calls_model:
        return None, None
    if question_id == CONTAINER_QUESTION:
        raise PermanentExecutorError(
            "container_job",
            "a command-style JobSpec runs its container on a backend that isolates containers (golem); "
            "this worker path only sends prompts",
        )
    found = find_question(question_id)
    if found is None:
        raise PermanentExecutorError(
            "unknown_question",
            f"question id {question_id!r} is in no question set (simple: {question_set().version})",
        )
    question = found[0]
    if variant not in ("neutral", "region"):
        raise PermanentExecutorError("unknown_variant", f"unknown system-prompt variant {variant!r}")
    chosen: Variant = "region" if variant == "region" else "neutral"
    return system_prompt(chosen, region), question.text


def build_request(
    *,
    execution_id: str,
    benchmark: str,
    question_id: str,
    variant: str,
    model: str,
    region: str,
    options: DecodingOptions,
    deadline: float,
) -> ExecutionRequest:
    system, prompt = prompts_for(benchmark, question_id, variant, region)
    if system is None or prompt is None:
        raise PermanentExecutorError("no_model_call", f"the {benchmark} benchmark makes no model call")
    return ExecutionRequest(
        prompt=prompt,
        system_prompt=system,
        model=model,
        region=region,
        options=options,
        deadline=deadline,
        execution_id=execution_id,
    )
