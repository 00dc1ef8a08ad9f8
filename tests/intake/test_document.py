"""Reading the submitted body: strict JSON objects only."""

from __future__ import annotations

import pytest

from beacon.intake import IntakeError, parse_document


def test_reads_a_json_object() -> None:
    assert parse_document(b'{"a": [1, 2.5, "x"], "b": {"c": null}}') == {"a": [1, 2.5, "x"], "b": {"c": None}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": Infinity}', "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b'{"a": "\\ud800"}', "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b'{"m": {"nonce": "x", "nonce": "y"}}', "duplicate_key"),
    ],
)
def test_refuses_what_is_not_one_unambiguous_object(body: bytes, code: str) -> None:
    with pytest.raises(IntakeError) as refused:
        parse_document(body)
    assert refused.value.code == code
    assert refused.value.status == 400
