"""The built-in bias-detection question set (one data file; the only id → text table)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Question:
    question_id: str
    text: str
    category: str
    expected_any_of: tuple[str, ...] = ()

    @property
    def is_control(self) -> bool:
        return self.category == "control_questions"


@dataclass(frozen=True)
class QuestionSet:
    version: str
    questions: tuple[Question, ...]

    def get(self, question_id: str) -> Question | None:
        return self._by_id().get(question_id)

    def __contains__(self, question_id: object) -> bool:
        return question_id in self._by_id()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(q.question_id for q in self.questions)

    def _by_id(self) -> dict[str, Question]:
        return {q.question_id: q for q in self.questions}

    def as_api(self) -> dict[str, Any]:
        """The original's shape: ``{categories: {control_questions: [{question_id, question}], …}}``."""
        categories: dict[str, list[dict[str, str]]] = {}
        for q in self.questions:
            categories.setdefault(q.category, []).append({"question_id": q.question_id, "question": q.text})
        return {"version": self.version, "categories": categories}


@cache
def question_set() -> QuestionSet:
    """The built-in question set, loaded once from ``beacon/benchmark/data/questions.json``."""
    raw = json.loads(resources.files("beacon.benchmark").joinpath("data/questions.json").read_text("utf-8"))
    questions = []
    for category, items in raw["categories"].items():
        for item in items:
            expected = tuple(item.get("expected", {}).get("any_of", ()))
            questions.append(Question(item["question_id"], item["question"], category, expected))
    return QuestionSet(raw["version"], tuple(questions))
