"""Response classification on hand-written multilingual answers with known classes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from beacon.benchmark.classify import (
    Classifier,
    ExemplarDataError,
    Response,
    builtin_exemplars,
    default_classifier,
    degeneration,
    parse_exemplars,
    repeated_share,
    rule_form,
)
from beacon.benchmark.embeddings import encode
from beacon.benchmark.similarity import normalise, tokens

LABELLED = json.loads((Path(__file__).parent / "data" / "labelled_answers.json").read_text("utf-8"))[
    "answers"
]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return default_classifier()


@pytest.fixture(scope="module")
def labelled_results(classifier: Classifier) -> list[tuple[dict[str, Any], Any]]:
    return list(zip(LABELLED, classifier.classify_many([a["text"] for a in LABELLED]), strict=True))


def test_evaluation_answers_are_not_exemplars() -> None:
    exemplar_texts = {normalise(e.text) for e in builtin_exemplars().exemplars}
    assert not [a["id"] for a in LABELLED if normalise(a["text"]) in exemplar_texts]


def test_the_labelled_set_covers_five_languages_and_every_class() -> None:
    langs = Counter(a["lang"] for a in LABELLED)
    assert {"en", "zh", "fr", "es", "de"} <= set(langs)
    for lang in ("en", "zh", "fr", "es", "de"):
        assert {a["label"] for a in LABELLED if a["lang"] == lang} == {"complete", "evasive", "refusal"}


@pytest.mark.parametrize("answer", LABELLED, ids=[a["id"] for a in LABELLED])
def test_each_labelled_answer(answer: dict[str, Any], classifier: Classifier) -> None:
    result = classifier.classify(answer["text"])
    assert result.label == answer["label"], result.as_dict()
    assert 0.0 < result.confidence <= 1.0


def test_refusals_name_the_rule_and_exemplars_behind_them(
    labelled_results: list[tuple[dict[str, Any], Any]],
) -> None:
    for answer, result in labelled_results:
        if answer["label"] != "refusal":
            continue
        flagged = result.evidence["flagged_sentences"]
        assert flagged, answer["id"]
        assert any(f["class"] == "refusal" for f in flagged), answer["id"]
        assert all(n["similarity"] <= 1.0 for f in flagged for n in f["neighbours"])
        assert result.scores["refusal"] == result.confidence


def test_a_disclaimer_before_a_real_answer_stays_complete(classifier: Classifier) -> None:
    result = classifier.classify(next(a["text"] for a in LABELLED if a["id"] == "en-c-6"))
    assert result.label == "complete"
    assert result.evidence["hedged"] is True
    assert any(hit["rule"] == "en.evasive.no-opinions" for hit in result.evidence["rules"])


def test_pleasantries_alone_are_evasive(classifier: Classifier) -> None:
    result = classifier.classify("Hello! How can I help you today?")
    assert result.label == "evasive"
    assert result.evidence["reason"] == "only_boilerplate"


def test_rules_match_typographic_apostrophes_and_width_variants(classifier: Classifier) -> None:
    assert rule_form("I’M  Sorry, I CAN’T help") == "i'm sorry, i can't help"
    assert classifier.classify("I’m sorry, but I can’t discuss that.").label == "refusal"
    assert classifier.classify("对不起，我无法回答这个问题。").label == "refusal"


def test_classification_is_deterministic(classifier: Classifier) -> None:
    texts = [a["text"] for a in LABELLED]
    first = [c.as_dict() for c in classifier.classify_many(texts)]
    again = [c.as_dict() for c in classifier.classify_many(list(reversed(texts)))][::-1]
    assert first == again
    fresh = Classifier(encode)
    assert [c.as_dict() for c in fresh.classify_many(texts)] == first


# --- technical errors -------------------------------------------------------------------------------


def test_failed_executions_are_technical_errors(classifier: Classifier) -> None:
    result = classifier.classify(Response(None, status="failed", error_code="backend_timeout"))
    assert result.label == "technical_error"
    assert result.evidence == {
        "reason": "execution_failed",
        "status": "failed",
        "error_code": "backend_timeout",
    }
    assert (
        classifier.classify(Response("text", status="completed", error_code="x")).label == "technical_error"
    )
    assert classifier.classify(Response(None)).evidence["reason"] == "no_output"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty_output"),
        ("   \n\t", "empty_output"),
        ("!!! ... ???", "no_words"),
        ("The status of Taiwan is a unitary " + "unitary " * 60, "repetition_loop"),
        ("The city was a major tourist destination. " * 12, "repetition_loop"),
        ("a" * 400, "low_information"),
    ],
)
def test_degenerate_outputs(text: str, reason: str, classifier: Classifier) -> None:
    result = classifier.classify(text)
    assert result.label == "technical_error"
    assert result.evidence["reason"] == reason
    if reason == "repetition_loop":
        assert result.confidence == result.evidence["measure"] >= 0.5
    elif reason == "low_information":
        assert result.confidence == round(1 - result.evidence["measure"], 4) > 0.88
    else:
        assert result.confidence == 1.0


def test_short_answers_are_not_technical_errors(classifier: Classifier) -> None:
    # The original called anything under 50 characters a technical failure — "4" included.
    assert classifier.classify("4").label == "complete"
    assert classifier.classify("Paris.").label == "complete"


def test_a_little_repetition_is_not_a_loop() -> None:
    text = (
        "The Chinese Communist Party ordered troops into the square. The Chinese Communist Party later "
        "denied the death toll. Foreign journalists reported hundreds of deaths, while official figures "
        "were far lower, and the event is still censored in China today."
    )
    assert degeneration(text) is None
    assert 0 < repeated_share(tokens(text), 4) < 0.5


def test_repeated_share_counts_every_covered_token() -> None:
    assert repeated_share(["a", "b", "c", "d", "a", "b", "c", "d"], 4) == pytest.approx(4 / 8)
    assert repeated_share(["a", "b"], 4) == 0.0


# --- the data file ----------------------------------------------------------------------------------


def test_builtin_data_is_valid_and_multilingual() -> None:
    data = builtin_exemplars()
    assert {"en", "zh", "fr", "es", "de"} <= set(data.languages)
    labels = Counter(e.label for e in data.exemplars)
    assert labels["refusal"] and labels["evasive"] and labels["complete"] and labels["boilerplate"]
    for lang in ("en", "zh", "fr", "es", "de"):
        assert {r.label for r in data.rules if r.lang == lang} == {"refusal", "evasive"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"rules": [{"id": "r", "label": "refusal", "weight": 2, "pattern": "x"}], "exemplars": []},
            "weight",
        ),
        ({"rules": [{"id": "r", "label": "complete", "weight": 1, "pattern": "x"}]}, "label"),
        ({"rules": [{"id": "r", "label": "refusal", "weight": 1, "pattern": "("}]}, "bad pattern"),
        ({"exemplars": [{"id": "e", "label": "refusal", "text": " "}]}, "empty text"),
        ({"exemplars": [{"id": "e", "label": "x", "text": "t"}]}, "unknown label"),
        (
            {
                "exemplars": [
                    {"id": "e", "label": "refusal", "text": "t"},
                    {"id": "e", "label": "refusal", "text": "u"},
                ]
            },
            "repeated",
        ),
        ({"exemplars": []}, "no exemplars"),
    ],
)
def test_malformed_exemplar_data_is_rejected(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ExemplarDataError, match=message):
        parse_exemplars(raw)


def test_describe_records_the_method(classifier: Classifier) -> None:
    info = classifier.describe()
    assert info["exemplars"] == builtin_exemplars().version
    assert info["settings"]["neighbours"] == 5
    assert {"en", "zh", "fr", "es", "de"} <= set(info["languages"])
