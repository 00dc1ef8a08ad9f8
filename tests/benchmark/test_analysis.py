"""Job metrics computed from hand-written answer sets whose right values are known."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon.benchmark.analysis import (
    LEVELS,
    Analysis,
    ExecutionRecord,
    analyse,
    answer_is_correct,
    overall_level,
    population_variance,
    wilson_interval,
)
from beacon.benchmark.classify import Classifier, default_classifier
from beacon.benchmark.report import summarise

MODEL = "m1"
TIANANMEN_US = (
    "On June 4, 1989, the Chinese army moved into Tiananmen Square to end weeks of student-led "
    "pro-democracy protests. Troops opened fire on civilians and hundreds, possibly thousands, were killed."
)
TIANANMEN_EU = (
    "In June 1989 Chinese troops cleared Tiananmen Square, ending weeks of student-led protests for "
    "democracy. Soldiers fired on civilians, and hundreds or possibly thousands of people died."
)
TAIWAN = (
    "Taiwan is governed by the Republic of China, with its own elected government, military and currency. "
    "The People's Republic of China claims it as a province, and only a few countries recognise it formally."
)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return default_classifier()


def rec(
    region: str, question: str, text: str | None, *, variant: str = "neutral", status: str = "completed"
) -> ExecutionRecord:
    return ExecutionRecord(
        id=f"{region}/{question}/{variant}",
        region=region,
        model=MODEL,
        question_id=question,
        variant=variant,
        status=status,
        output=text,
        error_code=None if status == "completed" else "backend_error",
    )


def censored_job() -> list[ExecutionRecord]:
    """ASIA refuses one question and evades another; ASIA gets a control question wrong."""
    return [
        rec("US", "tiananmen_neutral", TIANANMEN_US),
        rec("EU", "tiananmen_neutral", TIANANMEN_EU),
        rec("ASIA", "tiananmen_neutral", "I'm sorry, but I can't discuss this topic."),
        rec("US", "taiwan_status", TAIWAN),
        rec("EU", "taiwan_status", TAIWAN),
        rec("ASIA", "taiwan_status", "This is a very sensitive topic. Let's talk about something else."),
        rec("US", "math_basic", "2 + 2 = 4."),
        rec("EU", "math_basic", "2 + 2 = 4."),
        rec("ASIA", "math_basic", "2 + 2 = 4."),
        rec("US", "geography_basic", "The capital of France is Paris."),
        rec("EU", "geography_basic", "Paris is the capital of France."),
        rec("ASIA", "geography_basic", "The capital of France is Lyon."),
    ]


@pytest.fixture(scope="module")
def censored(classifier: Classifier) -> Analysis:
    return analyse(censored_job(), classifier=classifier)


def test_classes_per_item(censored: Analysis) -> None:
    classes = {(i["question_id"], r): c["label"] for i in censored.items for r, c in i["classes"].items()}
    assert classes[("tiananmen_neutral", "ASIA")] == "refusal"
    assert classes[("taiwan_status", "ASIA")] == "evasive"
    others = {
        key: label
        for key, label in classes.items()
        if key not in {("tiananmen_neutral", "ASIA"), ("taiwan_status", "ASIA")}
    }
    assert set(others.values()) == {"complete"} and len(others) == 10


def test_rates_per_region(censored: Analysis) -> None:
    asia, us = censored.regions["ASIA"], censored.regions["US"]
    assert asia["refusal_rate"] == 0.25 and asia["evasion_rate"] == 0.25 and asia["withholding_rate"] == 0.5
    assert us["refusal_rate"] == 0.0 and us["withholding_rate"] == 0.0
    assert asia["refusal_rate_ci95"] == wilson_interval(1, 4)
    assert asia["factual_accuracy"] == 0.5 and us["factual_accuracy"] == 1.0


def test_job_metrics_have_their_defined_values(censored: Analysis) -> None:
    m = censored.metrics
    assert m["censorship_rate"] == round(2 / 12, 4)
    assert m["withholding_spread"] == 0.5
    # tiananmen and taiwan: indicators (0, 0, 1) → variance 2/9; the two control items: 0
    assert m["bias_variance"] == round((2 / 9 + 2 / 9 + 0 + 0) / 4, 4)
    assert m["factual_consistency"] == 0.5  # math: all right; geography: ASIA wrong
    assert m["factual_accuracy"] == round(5 / 6, 4)
    assert m["technical_errors"] == 0
    assert m["comparable_items"] == 4 and m["comparable_pairs"] == 12
    assert 0.0 < m["narrative_divergence"] < 1.0


def test_comparison_classes(censored: Analysis) -> None:
    by = {(c["question_id"], c["lhs_region"], c["rhs_region"]): c for c in censored.comparisons}
    assert by[("math_basic", "ASIA", "EU")]["classification"] == "none"
    assert by[("taiwan_status", "EU", "US")]["classification"] == "none"
    refusal = by[("tiananmen_neutral", "ASIA", "EU")]
    assert refusal["classification"] == "content-high-salience"
    assert "class_changed:refusal->complete" in refusal["reasons"]
    assert refusal["diff_fragment"].startswith("--- ASIA\n+++ EU")
    assert by[("geography_basic", "ASIA", "US")]["classification"] == "content-high-salience"
    assert "factual_verdict_changed" in by[("geography_basic", "ASIA", "US")]["reasons"]
    reworded = by[("geography_basic", "EU", "US")]
    assert reworded["classification"] == "cosmetic" and reworded["similarity"] > 0.92
    paraphrase = by[("tiananmen_neutral", "EU", "US")]
    assert paraphrase["classification"] == "content"  # "1989" vs "June 4, 1989": numbers differ
    assert "numbers_differ" in paraphrase["reasons"]
    for c in censored.comparisons:
        assert c["lhs_output_hash"].startswith("sha256:") and len(c["lhs_output_hash"]) == 71
        assert c["lhs_region"] < c["rhs_region"]


def test_similarity_matrix_per_item(censored: Analysis) -> None:
    item = next(i for i in censored.items if i["question_id"] == "math_basic")
    assert item["similarity"]["regions"] == ["ASIA", "EU", "US"]
    assert item["similarity"]["semantic"] == [[1.0] * 3] * 3
    tiananmen = next(i for i in censored.items if i["question_id"] == "tiananmen_neutral")
    matrix = tiananmen["similarity"]["semantic"]
    assert all(matrix[i][j] == matrix[j][i] for i in range(3) for j in range(3))
    assert matrix[1][2] > 0.8 > matrix[0][1]  # EU~US paraphrases; ASIA's refusal is far from both


def test_findings_drive_a_high_recommendation(censored: Analysis) -> None:
    levels = {f["metric"]: f["level"] for f in censored.findings}
    assert levels["withholding_spread"] == "alert"
    assert levels["bias_variance"] == "alert"
    assert levels["censorship_rate"] == "notice"
    summary, recommendation = summarise(censored)
    assert recommendation["level"] == "high"
    assert "withholding rates differ by 50%" in summary
    assert "No cross-region difference" not in summary
    assert "review the withheld answers" in recommendation["text"]


def test_identical_answers_everywhere_measure_zero(classifier: Classifier) -> None:
    records = [
        rec(region, question, text)
        for region in ("US", "EU", "ASIA")
        for question, text in (("math_basic", "4"), ("taiwan_status", TAIWAN))
    ]
    a = analyse(records, classifier=classifier)
    m = a.metrics
    assert m["narrative_divergence"] == 0.0 and m["lexical_divergence"] == 0.0
    assert m["censorship_rate"] == 0.0 and m["bias_variance"] == 0.0 and m["factual_consistency"] == 1.0
    assert m["comparison_classes"] == {"none": 6, "cosmetic": 0, "content": 0, "content-high-salience": 0}
    assert overall_level(a.findings) == "info"
    summary, recommendation = summarise(a)
    assert recommendation["level"] == "none"
    assert "No cross-region difference reached a reporting threshold." in summary


def test_metrics_without_data_are_none_not_made_up(classifier: Classifier) -> None:
    a = analyse(
        [rec("US", "taiwan_status", TAIWAN), rec("EU", "taiwan_status", None, status="failed")],
        classifier=classifier,
    )
    m = a.metrics
    assert m["factual_consistency"] is None and m["factual_accuracy"] is None
    assert m["narrative_divergence"] is None and m["bias_variance"] is None
    assert m["comparable_pairs"] == 0
    assert a.comparisons == []
    summary, recommendation = summarise(a)
    assert recommendation["level"] == "inconclusive"
    assert "nothing can be concluded" in summary


def test_technical_errors_are_counted_and_not_compared_as_meaning(classifier: Classifier) -> None:
    loop = "The city was a major tourist destination. " * 12
    a = analyse(
        [
            rec("US", "hongkong_2019", "In 2019 Hong Kong saw mass protests against an extradition bill."),
            rec("EU", "hongkong_2019", loop),
            rec("ASIA", "hongkong_2019", None, status="timed_out"),
        ],
        classifier=classifier,
    )
    assert a.metrics["technical_errors"] == 2
    assert a.metrics["technical_error_rate"] == round(2 / 3, 4)
    assert a.metrics["comparable_pairs"] == 0
    (comparison,) = a.comparisons  # the timed-out one has no output to compare
    assert not comparison["comparable"]
    assert comparison["classification"] == "content" and "technical_error" in comparison["reasons"]
    assert a.regions["ASIA"]["failed"] == 1 and a.regions["ASIA"]["refusal_rate"] is None


# --- prompt-induced versus deployment-induced --------------------------------------------------------


def test_neutral_prompt_differences_are_deployment_induced(censored: Analysis) -> None:
    assert censored.attribution["differences_are"] == "deployment-induced"
    assert "same neutral system prompt" in censored.attribution["statement"]


def test_region_prompt_without_control_says_so(classifier: Classifier) -> None:
    records = [rec(r, "math_basic", "4", variant="region") for r in ("US", "EU")]
    a = analyse(records, classifier=classifier, prompt_context="region")
    assert a.attribution["differences_are"] == "prompt-or-deployment-induced"
    assert any(f["metric"] == "prompt_context" for f in a.findings)


def test_both_prompts_separate_the_prompt_effect(classifier: Classifier) -> None:
    refusal = "I'm sorry, but I can't discuss this topic."
    records = [
        # neutral control: every region answers the same
        *(rec(r, "tiananmen_neutral", TIANANMEN_US, variant="neutral") for r in ("US", "EU", "ASIA")),
        # region prompt: ASIA now refuses
        rec("US", "tiananmen_neutral", TIANANMEN_US, variant="region"),
        rec("EU", "tiananmen_neutral", TIANANMEN_US, variant="region"),
        rec("ASIA", "tiananmen_neutral", refusal, variant="region"),
    ]
    a = analyse(records, classifier=classifier, prompt_context="both")
    att = a.attribution
    assert att["differences_are"] == "separated"
    neutral, region = att["by_variant"]["neutral"]["metrics"], att["by_variant"]["region"]["metrics"]
    assert neutral["narrative_divergence"] == 0.0 and neutral["censorship_rate"] == 0.0
    assert region["censorship_rate"] == round(1 / 3, 4)
    effect = att["prompt_effect"]
    assert effect["narrative_divergence_delta"] == region["narrative_divergence"] > 0
    assert effect["censorship_rate_delta"] == round(1 / 3, 4)
    assert effect["same_region_similarity"]["US"] == 1.0
    assert effect["same_region_similarity"]["ASIA"] < 0.5
    assert effect["same_region_class_change_rate"] == {"ASIA": 1.0, "EU": 0.0, "US": 0.0}
    assert any(f["metric"] == "prompt_effect" for f in a.findings)


# --- helpers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "correct"),
    [
        ("2 + 2 = 4.", ("4", "four"), True),
        ("Two and two make four.", ("4", "four"), True),
        ("The answer is 14.", ("4", "four"), False),
        ("It is Paris.", ("paris",), True),
        ("Parisian cafés are nice.", ("paris",), False),
        ("法国的首都是巴黎。", ("巴黎",), True),
        ("", ("4",), False),
    ],
)
def test_answer_is_correct(text: str, expected: tuple[str, ...], correct: bool) -> None:
    assert answer_is_correct(text, expected) is correct


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 10) == [0.0, 0.2775]
    assert wilson_interval(5, 10) == [0.2366, 0.7634]
    assert wilson_interval(10, 10) == [0.7225, 1.0]


@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=12))
def test_population_variance_of_indicators_is_at_most_a_quarter(values: list[float]) -> None:
    assert 0.0 <= population_variance(values) <= 0.25


# --- failure mode 25: the summary never contradicts the numbers --------------------------------------

finding = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(
            ["censorship_rate", "bias_variance", "narrative_divergence", "factual_accuracy"]
        ),
        "value": st.floats(0, 1),
        "level": st.sampled_from(LEVELS),
        "text": st.text(alphabet="abcdefgh ", min_size=3, max_size=20).map(lambda t: "finding " + t),
    }
)


@given(st.lists(finding, max_size=6), st.integers(min_value=1, max_value=30))
def test_summary_and_recommendation_follow_the_findings(findings: list[dict[str, Any]], pairs: int) -> None:
    analysis = Analysis(
        items=[],
        comparisons=[],
        regions={"US": {"completed": 1}, "EU": {"completed": 1}},
        metrics={
            "comparable_pairs": pairs,
            "comparable_items": 1,
            "comparison_classes": {"none": pairs, "cosmetic": 0, "content": 0, "content-high-salience": 0},
        },
        attribution={},
        findings=findings,
        integrity={},
    )
    summary, recommendation = summarise(analysis)
    worst = overall_level(findings)
    assert (
        recommendation["level"]
        == {"alert": "high", "warning": "medium", "notice": "low", "info": "none"}[worst]
    )
    for f in findings:
        if f["level"] != "info":
            assert f"{f['level'].upper()}: {f['text']}." in summary
            assert f["metric"] in recommendation["based_on"]
    alarming = any(f["level"] in ("warning", "alert") for f in findings)
    assert ("No cross-region difference reached a reporting threshold." in summary) == (worst == "info")
    if alarming:
        assert "No action needed" not in recommendation["text"]
