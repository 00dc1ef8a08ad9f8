"""The JobSpec model: numbers are numbers (a JSON boolean is never read as 0 or 1)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from beacon.models.jobspec import JobSpec

BASE: dict[str, Any] = {"id": "job-1", "benchmark": {"name": "bias-detection"}}


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"runs": True}, ("runs",)),
        ({"options": {"temperature": True}}, ("options", "temperature")),
        ({"options": {"seed": False}}, ("options", "seed")),
        ({"options": {"max_tokens": True}}, ("options", "max_tokens")),
        ({"constraints": {"max_retries": True}}, ("constraints", "max_retries")),
        ({"constraints": {"min_success_rate": False}}, ("constraints", "min_success_rate")),
    ],
)
def test_a_boolean_is_not_a_number(fields: dict[str, Any], path: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as refused:
        JobSpec.model_validate({**BASE, **fields})
    assert tuple(refused.value.errors()[0]["loc"]) == path


def test_an_integer_is_still_a_fine_float() -> None:
    spec = JobSpec.model_validate({**BASE, "options": {"temperature": 1, "top_p": 1}})
    assert spec.options.temperature == 1.0 and spec.options.top_p == 1.0
