"""Reading the submitted body: strict JSON objects only."""

from __future__ import annotations

import pytest

from beacon.canonical import CanonicalizationError, go_canonical
from beacon.intake import IntakeError, parse_document
from beacon.intake.document import MAX_JSON_DEPTH, exceeds_depth


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


# --- nesting depth is bounded before anything recursive sees the value (issue 16, item 3) ----------


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' + b"[" * (depth - 1) + inner + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 1000, 100_000])
def test_deeply_nested_bodies_are_invalid_json_not_a_crash(depth: int) -> None:
    with pytest.raises(IntakeError) as refused:
        parse_document(nested(depth))
    assert (refused.value.status, refused.value.code) == (400, "invalid_json")
    assert "levels deep" in refused.value.detail


def test_nesting_up_to_the_limit_is_read() -> None:
    assert parse_document(nested(MAX_JSON_DEPTH))["a"]


def test_brackets_inside_strings_do_not_count() -> None:
    text = b'{"a": "' + b"[{" * 5000 + b'\\"]", "b": ["]]]"]}'
    assert not exceeds_depth(text)
    assert parse_document(text)["b"] == ["]]]"]


def test_depth_is_counted_across_objects_and_arrays() -> None:
    assert exceeds_depth(b'{"a":{"b":[{"c":[]}]}}', limit=4)
    assert not exceeds_depth(b'{"a":{"b":[{"c":[]}]}}', limit=5)
    assert not exceeds_depth(b"[]" * 10_000, limit=1)  # wide is not deep


def test_the_surrogate_walk_is_behind_the_bound() -> None:
    body = nested(5000, b'"\\ud800"')  # the walk recursed per level: a RecursionError on old main
    with pytest.raises(IntakeError) as refused:
        parse_document(body)
    assert refused.value.code == "invalid_json"


def test_go_canonical_refuses_what_it_cannot_nest() -> None:
    value: object = 1
    for _ in range(5000):
        value = [value]
    with pytest.raises(CanonicalizationError):
        go_canonical(value)
