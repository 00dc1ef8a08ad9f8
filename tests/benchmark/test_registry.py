"""The benchmark definitions and the planning decisions they drive: flip a definition, the plan follows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from beacon.benchmark import registry
from beacon.benchmark.questions import NOOP_QUESTION, set_for_mode
from beacon.benchmark.registry import BENCHMARKS, NOOP, WHO_ARE_YOU, definition_for, not_compared
from beacon.executors.base import PermanentExecutorError
from beacon.intake.planner import UnplannableJobSpec, plan
from beacon.models.jobspec import JobSpec
from beacon.worker.requests import prompts_for


def spec(name: str, **fields: Any) -> JobSpec:
    return JobSpec.model_validate({"id": "job-1", "benchmark": {"name": name}, **fields})


def planned(job: JobSpec) -> list[str]:
    return [p.question_id for p in plan(job, default_regions=["US"], default_models=["m"])]


def test_the_registry_holds_the_jobspec_names() -> None:
    assert list(BENCHMARKS) == ["bias-detection", "who-are-you", "noop"]
    assert not_compared() == ["noop"]
    assert definition_for("noop") is NOOP
    unlisted = definition_for("my-container-benchmark")  # a command-style job names its own
    assert unlisted.calls_model and unlisted.compared and unlisted.pseudo_question is None


def test_a_pseudo_question_stands_in_for_the_jobs_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert planned(spec("noop")) == [NOOP_QUESTION]
    with pytest.raises(UnplannableJobSpec) as refused:
        planned(spec("noop", questions=["math_basic"]))
    assert refused.value.code == "invalid_questions"
    monkeypatch.setitem(
        BENCHMARKS, "noop", replace(NOOP, pseudo_question=None, default_questions=("math_basic",))
    )
    assert planned(spec("noop")) == ["math_basic"]
    assert planned(spec("noop", questions=["identity_basic"])) == ["identity_basic"]


def test_default_questions_are_asked_when_the_job_lists_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert planned(spec("who-are-you")) == ["identity_basic"]
    monkeypatch.setitem(BENCHMARKS, "who-are-you", replace(WHO_ARE_YOU, default_questions=("math_basic",)))
    assert planned(spec("who-are-you")) == ["math_basic"]


def test_a_benchmark_that_asks_its_modes_sets_plans_and_records_them(monkeypatch: pytest.MonkeyPatch) -> None:
    simple = list(set_for_mode("simple").ids)
    assert planned(spec("bias-detection")) == simple
    assert spec("bias-detection").question_sets == {"simple": set_for_mode("simple").describe()}
    assert spec("who-are-you").question_sets is None
    monkeypatch.setitem(BENCHMARKS, "who-are-you", replace(WHO_ARE_YOU, asks_mode_sets=True))
    assert planned(spec("who-are-you")) == simple
    assert spec("who-are-you").question_sets is not None


def test_a_benchmark_that_calls_no_model_has_no_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert prompts_for("noop", NOOP_QUESTION, "neutral", "US") == (None, None)
    monkeypatch.setitem(BENCHMARKS, "noop", replace(NOOP, calls_model=True))
    with pytest.raises(
        PermanentExecutorError
    ) as caught:  # now its pseudo-question is looked up as a question
        prompts_for("noop", NOOP_QUESTION, "neutral", "US")
    assert caught.value.code == "unknown_question"


def test_the_registry_is_the_one_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(BENCHMARKS, "noop")
    assert registry.benchmark_named("noop") is None
    with pytest.raises(UnplannableJobSpec) as refused:
        planned(spec("noop"))
    assert refused.value.code == "unknown_benchmark"
    assert "known: bias-detection, who-are-you" in str(refused.value)
