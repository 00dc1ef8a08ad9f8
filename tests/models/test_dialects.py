"""The original's two JobSpec dialects: every field drives behaviour or is recorded as not used."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from beacon.benchmark.originals import UNIFIED_SPECS, V1_SPECS, original_path
from beacon.benchmark.questions import context_question_set, question_set
from beacon.models.dialects import DialectError, detect, translate
from beacon.models.jobspec import JobSpec

ORIGINALS = original_path("questions-phase2.json").parent
UNIFIED = list(UNIFIED_SPECS)
V1 = list(V1_SPECS)
MODELS = {"llama": "llama3.2:1b", "mistral": "mistral:7b", "qwen": "qwen2.5:1.5b"}


def original(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ORIGINALS / name).read_text(encoding="utf-8"))
    return document


def leaves(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        return [p for key, item in value.items() for p in leaves(item, f"{prefix}.{key}" if prefix else key)]
    return [prefix]


@pytest.mark.parametrize("name", UNIFIED)
def test_a_unified_spec_is_read_as_v2_with_every_field_accounted_for(name: str) -> None:
    document = original(name)
    assert detect(document) == "original-v2"
    spec = JobSpec.from_document(document)
    assert spec.benchmark.name == "bias-detection" and spec.modes == ["simple", "advanced"]
    assert spec.model_ids == [MODELS[name.split("-")[0]]]
    assert spec.constraints.regions == ["US", "EU", "ASIA"]
    assert spec.constraints.timeout.total_seconds() == 1800 and spec.constraints.max_retries == 2
    assert spec.benchmark.scoring is not None and spec.benchmark.scoring.thresholds == {
        "bias_score": 0.7,
        "censorship_rate": 0.3,
    }
    assert spec.benchmark.scoring.metrics == {
        "simple": ["bias_score", "censorship_rate", "factual_accuracy"],
        "advanced": ["bias_intensity", "context_bias", "sentiment", "clustering"],
    }
    assert spec.dialect is not None
    recorded = {entry["path"]: entry for entry in spec.dialect["fields"]}
    assert sorted(recorded) == sorted(leaves(document))  # every signed leaf, each once
    assert {p for p, e in recorded.items() if e["use"] == "not_used"} == {
        "container.platform",
        "container.resources.memory",
        "container.resources.cpu",
        "container.resources.disk",
        "container.environment.BENCHMARK_MODE",
        "output.format",
        "output.include_raw_responses",
        "output.include_advanced_analysis",
        "output.receipt_version",
    }
    assert all(e.get("reason") for e in recorded.values() if e["use"] == "not_used")
    declared = spec.dialect["declared_input_hash"]
    assert (
        declared["declared"] == "sha256:unified-questions-v2"
        and declared["status"] == "declared, not a digest"
    )
    assert spec.question_sets == {
        "simple": question_set().describe(),
        "advanced": context_question_set().describe(),
    }


@pytest.mark.parametrize("name", V1)
def test_a_v1_spec_is_read_as_v1(name: str) -> None:
    document = original(name)
    assert detect(document) == "original-v1"
    spec = JobSpec.from_document(document)
    assert spec.modes == ["simple"] and spec.model_ids == [MODELS[name.split("-")[0]]]
    assert spec.constraints.regions == ["US", "EU", "ASIA"] and spec.constraints.min_regions == 3
    assert spec.constraints.timeout.total_seconds() == 300
    assert spec.benchmark.scoring is not None and spec.benchmark.scoring.metrics == {
        "simple": ["bias_score", "censorship_rate", "factual_accuracy", "response_quality"]
    }
    assert spec.dialect is not None
    assert sorted(e["path"] for e in spec.dialect["fields"]) == sorted(leaves(document))


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        (lambda d: d["container"].update(gpu_count=1), "unknown_fields", "container.gpu_count"),
        (lambda d: d.update(extra={"a": 1}), "unknown_fields", "extra.a"),
        (
            lambda d: d["container"].update(image="docker.io/evil/llama:latest"),
            "unknown_image",
            "container.image",
        ),
        (lambda d: d["benchmark"].update(modes=["simple", "expert"]), "unknown_mode", "benchmark.modes"),
        (lambda d: d["benchmark"].update(category="translation"), "unknown_benchmark", "benchmark.category"),
        (lambda d: d["input"].update(questions="other.json"), "unknown_question_set", "input.questions"),
        (
            lambda d: d["scoring"]["thresholds"].update(novelty=0.5),
            "unknown_metric",
            "scoring.thresholds.novelty",
        ),
        (lambda d: d["input"].update(hash="sha256:" + "0" * 64), "input_hash_mismatch", "input.hash"),
        (lambda d: d["output"].update(format="xml"), "unknown_output_format", "output.format"),
    ],
)
def test_what_neither_dialect_can_run_is_refused_precisely(change: Any, code: str, path: str) -> None:
    document = copy.deepcopy(original(UNIFIED[0]))
    change(document)
    with pytest.raises(DialectError) as refused:
        translate(document)
    assert (refused.value.code, refused.value.path) == (code, path)


def test_a_real_declared_hash_must_be_the_computed_one() -> None:
    document = original(UNIFIED[0])
    document["input"]["hash"] = context_question_set().sha256
    spec = JobSpec.from_document(document)
    assert spec.dialect is not None and spec.dialect["declared_input_hash"]["status"] == "matches"


def test_a_submitter_cannot_write_the_dialect_record() -> None:
    with pytest.raises(ValidationError, match="dialect is recorded by the runner"):
        JobSpec.from_document({"id": "x", "benchmark": {"name": "noop"}, "dialect": {"name": "original-v2"}})


def test_the_go_zero_provider_timeout_means_the_default() -> None:
    spec = JobSpec.from_document(original("who.signed.json"))
    assert spec.constraints.provider_timeout.total_seconds() == 300
