"""The planner: a verified JobSpec → its executions, deterministic and validated."""

from __future__ import annotations

from typing import Any

import pytest

from beacon.benchmark.questions import NOOP_QUESTION, question_set
from beacon.intake.planner import UnplannableJobSpec, execution_id, plan
from beacon.models.jobspec import JobSpec


def spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"id": "job-1", "benchmark": {"name": "bias-detection"}, **fields})


def test_one_execution_per_region_model_question_and_variant() -> None:
    planned = plan(
        spec(
            constraints={"regions": ["US", "APAC"]},
            models=["a", "b"],
            questions=["math_basic", "taiwan_status"],
            options={"prompt_context": "both"},
        ),
        default_regions=["EU"],
        default_models=["m"],
    )
    assert len(planned) == 2 * 2 * 2 * 2
    keys = {(p.region, p.model, p.question_id, p.variant) for p in planned}
    assert len(keys) == 16 and {p.region for p in planned} == {"US", "ASIA"}
    assert len({p.id for p in planned}) == 16


def test_ids_are_deterministic_and_depend_on_every_part() -> None:
    first = plan(spec(), default_regions=["EU"], default_models=["m"])
    again = plan(spec(), default_regions=["EU"], default_models=["m"])
    assert [p.id for p in first] == [p.id for p in again]
    base = execution_id("job-1", "EU", "m", "math_basic", "neutral")
    variants = {
        execution_id("job-2", "EU", "m", "math_basic", "neutral"),
        execution_id("job-1", "US", "m", "math_basic", "neutral"),
        execution_id("job-1", "EU", "n", "math_basic", "neutral"),
        execution_id("job-1", "EU", "m", "taiwan_status", "neutral"),
        execution_id("job-1", "EU", "m", "math_basic", "region"),
    }
    assert base not in variants and len(variants) == 5 and base.startswith("ex_") and len(base) == 32


def test_defaults_fill_regions_models_and_the_whole_question_set() -> None:
    planned = plan(spec(), default_regions=["EU"], default_models=["smollm2-135m"])
    assert {p.region for p in planned} == {"EU"} and {p.model for p in planned} == {"smollm2-135m"}
    assert [p.question_id for p in planned] == list(question_set().ids)


def test_only_questions_narrows_each_modes_set_and_refuses_an_id_no_set_asks() -> None:
    bounded = spec(
        benchmark={"name": "bias-detection", "modes": ["simple", "advanced"]},
        options={"only_questions": ["math_basic", "tiananmen_neutral", "tiananmen_china_context"]},
    )
    planned = plan(bounded, default_regions=["EU"], default_models=["m"])
    # tiananmen_neutral is in both sets (one text): asked once
    assert [p.question_id for p in planned] == ["math_basic", "tiananmen_neutral", "tiananmen_china_context"]
    simple_only = spec(options={"only_questions": ["tiananmen_china_context"]})  # an advanced id, simple mode
    with pytest.raises(UnplannableJobSpec) as refused:
        plan(simple_only, default_regions=["EU"], default_models=["m"])
    assert refused.value.code == "unknown_question" and refused.value.path == "options.only_questions.0"
    both = spec(questions=["math_basic"], options={"only_questions": ["math_basic"]})
    with pytest.raises(UnplannableJobSpec) as refused:
        plan(both, default_regions=["EU"], default_models=["m"])
    assert refused.value.code == "invalid_questions"


def test_noop_and_who_are_you() -> None:
    (noop,) = plan(spec(benchmark={"name": "noop"}), default_regions=["US"], default_models=["m"])
    assert noop.question_id == NOOP_QUESTION
    (identity,) = plan(spec(benchmark={"name": "who-are-you"}), default_regions=["US"], default_models=["m"])
    assert identity.question_id == "identity_basic"


@pytest.mark.parametrize("benchmark", ["bias-detection", "who-are-you"])
def test_a_question_asked_twice_is_planned_once(benchmark: str) -> None:
    asked = spec(benchmark={"name": benchmark}, questions=["identity_basic", "math_basic", "identity_basic"])
    planned = plan(asked, default_regions=["US"], default_models=["m"])
    assert [p.question_id for p in planned] == ["identity_basic", "math_basic"]
    assert len({p.id for p in planned}) == 2


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"questions": ["no_such_question"]}, "unknown_question"),
        ({"benchmark": {"name": "who-are-you"}, "questions": ["no_such_question"]}, "unknown_question"),
        ({"benchmark": {"name": "noop"}, "questions": ["math_basic"]}, "invalid_questions"),
        ({"benchmark": {"name": "mmlu"}}, "unknown_benchmark"),
        ({"constraints": {"regions": ["EU"], "min_regions": 2}}, "invalid_constraints"),
    ],
)
def test_what_cannot_be_planned_is_refused_with_a_code(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(UnplannableJobSpec) as caught:
        plan(spec(**fields), default_regions=["EU"], default_models=["m"])
    assert caught.value.code == code and caught.value.path


def test_no_region_or_model_anywhere_is_refused() -> None:
    with pytest.raises(UnplannableJobSpec, match="no region"):
        plan(spec(), default_regions=[], default_models=["m"])
    with pytest.raises(UnplannableJobSpec, match="no model"):
        plan(spec(), default_regions=["EU"], default_models=[])
