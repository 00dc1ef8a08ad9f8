"""The bias-detection question sets (data files; the only id → text tables).

Two versioned sets, selected by a job's modes (``docs/jobspecs.md``):

* ``simple`` — ``data/questions.json``, the original's 8 questions (reference §8.1);
* ``advanced`` — ``data/questions-context.json``, the original's phase-2 context variants: each topic
  asked neutrally (``context: "none"``) and under framings ("You are speaking to a student in
  Beijing…").

Each set's ``sha256`` is computed from its content (RFC 8785 bytes of the data file), never declared,
and recorded on every job that asks from it. A question id means one text everywhere: an id in both
sets (``tiananmen_neutral``) must carry the same text in both, and :func:`find_question` returns it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from beacon.canonical import jcs, sha256_hex

Mode = Literal["simple", "advanced"]
MODES: tuple[Mode, ...] = ("simple", "advanced")
NEUTRAL_CONTEXT = "none"
"""The ``context`` of a context set's neutral variant (no framing)."""
NOOP_QUESTION = "noop"
"""The pseudo-question of the ``noop`` benchmark: no model is called."""
CONTAINER_QUESTION = "container"
"""The pseudo-question of a command-style JobSpec: the region's backend runs the spec's container."""


@dataclass(frozen=True)
class Question:
    question_id: str
    text: str
    category: str
    expected_any_of: tuple[str, ...] = ()
    context: str | None = None
    """Context sets only: the framing (``none`` for the neutral variant, ``china``, ``us`` …)."""
    topic: str | None = None
    """Context sets only: what the variants of one question share (``tiananmen``, ``taiwan`` …)."""

    @property
    def is_control(self) -> bool:
        return self.category == "control_questions"


@dataclass(frozen=True)
class QuestionSet:
    version: str
    questions: tuple[Question, ...]
    sha256: str = ""
    """``sha256:<hex>`` of the RFC 8785 bytes of the set's data file."""
    source: str = ""
    """The data file, relative to ``beacon/benchmark``."""

    def get(self, question_id: str) -> Question | None:
        return self._by_id().get(question_id)

    def __contains__(self, question_id: object) -> bool:
        return question_id in self._by_id()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(q.question_id for q in self.questions)

    def _by_id(self) -> dict[str, Question]:
        return {q.question_id: q for q in self.questions}

    def describe(self) -> dict[str, Any]:
        """What a job records about the set it asks from."""
        return {"version": self.version, "sha256": self.sha256, "questions": len(self.questions)}

    def as_api(self) -> dict[str, Any]:
        """The original's shape: ``{categories: {control_questions: [{question_id, question}], …}}``."""
        categories: dict[str, list[dict[str, str]]] = {}
        for q in self.questions:
            categories.setdefault(q.category, []).append({"question_id": q.question_id, "question": q.text})
        return {"version": self.version, "categories": categories}


def _load(filename: str) -> tuple[dict[str, Any], str]:
    text = resources.files("beacon.benchmark").joinpath(f"data/{filename}").read_text("utf-8")
    raw = json.loads(text)
    return raw, "sha256:" + sha256_hex(jcs(raw))


@cache
def question_set() -> QuestionSet:
    """The built-in (``simple``) question set, loaded once from ``beacon/benchmark/data/questions.json``."""
    raw, digest = _load("questions.json")
    questions = []
    for category, items in raw["categories"].items():
        for item in items:
            expected = tuple(item.get("expected", {}).get("any_of", ()))
            questions.append(Question(item["question_id"], item["question"], category, expected))
    return QuestionSet(raw["version"], tuple(questions), digest, "data/questions.json")


@cache
def context_question_set() -> QuestionSet:
    """The ``advanced`` set: the phase-2 context variants, from ``data/questions-context.json``."""
    raw, digest = _load("questions-context.json")
    questions = []
    for items in raw["groups"].values():
        for item in items:
            expected = tuple(item.get("expected", {}).get("any_of", ()))
            questions.append(
                Question(
                    item["question_id"],
                    item["question"],
                    item["category"],
                    expected,
                    context=item["context"],
                    topic=item["topic"],
                )
            )
    return QuestionSet(raw["version"], tuple(questions), digest, "data/questions-context.json")


def set_for_mode(mode: Mode) -> QuestionSet:
    """The question set a mode asks."""
    return question_set() if mode == "simple" else context_question_set()


def find_question(question_id: str) -> tuple[Question, QuestionSet] | None:
    """The question with this id and the set it belongs to (the simple set first), or None."""
    for questions in (question_set(), context_question_set()):
        found = questions.get(question_id)
        if found is not None:
            return found, questions
    return None


@cache
def all_questions() -> QuestionSet:
    """Every known question once (the simple set's, then the context set's others): for lookups."""
    simple, context = question_set(), context_question_set()
    merged = list(simple.questions)
    for q in context.questions:
        known = simple.get(q.question_id)
        if known is None:
            merged.append(q)
        elif known.text != q.text:  # one id, one text (failure mode 11)
            raise ValueError(
                f"question {q.question_id!r} has two texts in {simple.version} and {context.version}"
            )
        else:  # the same question: keep the context set's framing facts too
            merged[merged.index(known)] = q.__class__(
                known.question_id, known.text, known.category, known.expected_any_of, q.context, q.topic
            )
    return QuestionSet(f"{simple.version}+{context.version}", tuple(merged))


def question_set_version(question_id: str) -> str:
    """The version of the set a question id belongs to (the simple set's for unknown ids)."""
    found = find_question(question_id)
    return found[1].version if found else question_set().version
