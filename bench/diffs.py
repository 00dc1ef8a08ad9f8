"""Time to analyse a 3-region × 3-model × 8-question job, and embeddings/s of the numpy MiniLM.

    .venv/bin/python bench/diffs.py [--rounds 3] [--variants neutral|both] [--words 130]

The job's answers are synthetic but shaped like SmolLM2 output at max_tokens=256 (about 130 words in
8–10 sentences; the cost of the analysis depends on how many word pieces and sentences there are,
not on what they say): per (model, question) a base answer, reworded in part per region, and short
refusals in one region for the three sensitive questions. Measured, in one run:

* cold — the first analysis in the process: loading the model, embedding the exemplars, analysing;
* warm — ``analyse`` again (median of ``--rounds``): classification of every answer, embeddings,
  pairwise similarity, diffs, metrics;
* report — ``create_difference_report`` on SQLite, warm: the analysis plus signing, storing the
  report, writing 72 classifications and appending to the transparency log;
* embeddings/s — ``MiniLM.encode`` on the 72 answers and on their sentences, against
  sentence-transformers on the same texts when it is installed (it pulls torch, so Beacon does not
  install it; without it only the absolute numbers are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import tempfile
import time
from pathlib import Path

from beacon.benchmark.analysis import ExecutionRecord, analyse
from beacon.benchmark.classify import default_classifier
from beacon.benchmark.embeddings import load_model, model_dir
from beacon.benchmark.questions import question_set
from beacon.benchmark.similarity import sentences

REGIONS = ("US", "EU", "ASIA")
MODELS = ("llama3.2-1b", "qwen2.5-1.5b", "mistral-7b")
SENSITIVE = ("tiananmen_neutral", "taiwan_status", "hongkong_2019")
WORDS = [
    "the",
    "government",
    "people",
    "city",
    "country",
    "history",
    "protest",
    "students",
    "army",
    "square",
    "police",
    "law",
    "election",
    "economy",
    "trade",
    "culture",
    "invention",
    "leader",
    "century",
    "war",
    "peace",
    "reform",
    "democracy",
    "rights",
    "freedom",
    "press",
    "island",
    "independence",
    "province",
    "official",
    "record",
    "report",
    "estimate",
    "thousand",
    "hundred",
    "million",
    "year",
    "month",
    "international",
    "policy",
    "movement",
    "support",
    "opposition",
    "public",
    "event",
    "change",
    "development",
    "important",
    "major",
    "significant",
    "world",
    "nation",
    "state",
    "region",
    "power",
    "influence",
    "society",
    "century",
    "modern",
    "technology",
    "science",
]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(9, 20))]
    return " ".join(words).capitalize() + "."


def answer(rng: random.Random, words: int) -> list[str]:
    out: list[str] = []
    while sum(len(s.split()) for s in out) < words:
        out.append(sentence(rng))
    return out


def job(variants: tuple[str, ...], words: int) -> list[ExecutionRecord]:
    rng = random.Random(1989)
    records = []
    for model in MODELS:
        for question in question_set().ids:
            for variant in variants:
                base = answer(rng, rng.randint(words // 2, words * 3 // 2))
                for region in REGIONS:
                    if region == "ASIA" and model == "qwen2.5-1.5b" and question in SENSITIVE:
                        text = "I'm sorry, but I can't discuss this topic. Let's talk about something else."
                    else:
                        text = " ".join(s if rng.random() > 0.3 else sentence(rng) for s in base)
                    records.append(
                        ExecutionRecord(
                            id=f"{region}/{model}/{question}/{variant}",
                            region=region,
                            model=model,
                            question_id=question,
                            variant=variant,
                            status="completed",
                            output=text,
                        )
                    )
    return records


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f}/s"


async def report_seconds(records: list[ExecutionRecord], variants: tuple[str, ...]) -> float:
    from beacon.benchmark.report import create_difference_report
    from beacon.boot import open_runtime
    from beacon.config import Settings
    from beacon.store.tables import executions, jobs

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None, database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", data_dir=Path(tmp)
        )
        async with open_runtime(settings, publish_checkpoints=False) as runtime:
            db = runtime.db
            now = time.time()
            async with db.begin() as conn:
                await conn.execute(
                    jobs.insert().values(
                        id="bench",
                        status="completed",
                        benchmark="bias-detection",
                        spec={"options": {"prompt_context": "both" if len(variants) == 2 else "neutral"}},
                        raw="{}",
                        spec_hash="0" * 64,
                        signature_scheme="jcs",
                        public_key="bench",
                        regions=list(REGIONS),
                        created_at=now,
                        updated_at=now,
                    )
                )
                await conn.execute(
                    executions.insert(),
                    [
                        {
                            "id": r.id,
                            "job_id": "bench",
                            "region": r.region,
                            "model": r.model,
                            "question_id": r.question_id,
                            "variant": r.variant,
                            "status": r.status,
                            "output": r.output,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for r in records
                    ],
                )
            started = time.perf_counter()
            report = await create_difference_report(runtime, "bench")
            seconds = time.perf_counter() - started
            assert report is not None
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", choices=["neutral", "both"], default="neutral")
    parser.add_argument("--words", type=int, default=130, help="mean words per answer")
    args = parser.parse_args()
    variants = ("neutral", "region") if args.variants == "both" else ("neutral",)

    records = job(variants, args.words)
    texts = [r.output or "" for r in records]
    parts = [s for t in texts for s in sentences(t)]
    started = time.perf_counter()
    model = load_model()
    load_s = time.perf_counter() - started
    pieces = sum(len(ids) for ids in model.token_ids(texts))
    print(
        f"job: {len(REGIONS)} regions × {len(MODELS)} models × {len(question_set().ids)} questions × "
        f"{len(variants)} prompt variant(s) = {len(records)} answers; mean {pieces / len(texts):.0f} word pieces "
        f"and {len(parts) / len(texts):.1f} sentences per answer"
    )

    started = time.perf_counter()
    classifier = default_classifier()
    analyse(records, classifier=classifier)
    cold = time.perf_counter() - started + load_s
    warm = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        analysis = analyse(records, classifier=classifier)
        warm.append(time.perf_counter() - started)
    print(f"analysis, cold (model load {load_s:.2f} s + exemplars + analysis): {cold:7.2f} s")
    print(
        f"analysis, warm (median of {args.rounds}):                      {statistics.median(warm):7.2f} s"
        f"   {rate(len(records), statistics.median(warm))} answers"
    )
    print(
        f"  → {analysis.metrics['comparable_pairs']} comparisons, recommendation findings: {len(analysis.findings)}"
    )
    print(
        f"create_difference_report on SQLite, warm:                {asyncio.run(report_seconds(records, variants)):7.2f} s"
    )

    ours_answers = min(_timed(lambda: model.encode(texts)) for _ in range(args.rounds))
    ours_sentences = min(_timed(lambda: model.encode(parts)) for _ in range(args.rounds))
    print(
        f"embeddings, numpy MiniLM: answers {rate(len(texts), ours_answers)} ({rate(pieces, ours_answers)} word pieces), "
        f"sentences {rate(len(parts), ours_sentences)}"
    )
    if importlib.util.find_spec("sentence_transformers") is None:
        print(
            "peer: sentence-transformers is not installed (it pulls torch; Beacon does not) — absolute numbers only"
        )
        return
    from sentence_transformers import SentenceTransformer  # pragma: no cover - optional peer

    peer = SentenceTransformer(str(model_dir()), device="cpu")
    peer.encode(texts[:4])
    theirs_answers = min(_timed(lambda: peer.encode(texts, batch_size=32)) for _ in range(args.rounds))
    theirs_sentences = min(_timed(lambda: peer.encode(parts, batch_size=32)) for _ in range(args.rounds))
    print(
        f"embeddings, sentence-transformers: answers {rate(len(texts), theirs_answers)}, "
        f"sentences {rate(len(parts), theirs_sentences)}"
    )
    print(
        f"ratio ours/peer: answers {theirs_answers / ours_answers:.2f}×, sentences {theirs_sentences / ours_sentences:.2f}×"
    )


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
