"""``GET /api/v1/questions``: the built-in question set, in the original's shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from beacon.benchmark.questions import question_set

router = APIRouter(tags=["benchmark"])


@router.get("/api/v1/questions", summary="The bias-detection questions by category")
async def questions() -> dict[str, Any]:
    """``{version, categories: {control_questions: [{question_id, question}], bias_detection: […], …}}``."""
    return question_set().as_api()
