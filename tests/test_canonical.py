"""Canonical JSON: RFC 8785 and the Go-compatible legacy form."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.canonical import CanonicalizationError, go_canonical, jcs


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (600000000000, "600000000000"),  # Go durations in nanoseconds stay integral
        (0.67, "0.67"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "1.5e-7"),  # Go trims the exponent's leading zero
        (1e-6, "0.000001"),
        (-0.0, "-0"),
        (2**53 + 1, "9007199254740992"),  # float64 precision, as Go parses it
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_go_numbers_match_encoding_json(number: float, expected: str) -> None:
    assert go_canonical(number).decode() == expected


def test_go_escapes_html_and_line_separators_but_keeps_other_unicode() -> None:
    value = {"b": "a&b<c>\u2028\u2029é\x01", "a": [1, 2.5, None, True]}
    assert go_canonical(value) == (
        b'{"a":[1,2.5,null,true],"b":"a\\u0026b\\u003cc\\u003e\\u2028\\u2029\xc3\xa9\\u0001"}'
    )


def test_go_sorts_keys_bytewise() -> None:
    assert go_canonical({"é": 1, "z": 2, "A": 3}) == '{"A":3,"z":2,"é":1}'.encode()


def test_jcs_differs_from_go_form_on_html_characters() -> None:
    value = {"q": "a&b"}
    assert jcs(value) == b'{"q":"a&b"}'
    assert go_canonical(value) == b'{"q":"a\\u0026b"}'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 10**400])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(CanonicalizationError):
        go_canonical({"x": bad})


def test_jcs_round_trips_through_json() -> None:
    value = {"z": [3, {"b": 1, "a": "x"}], "a": 1.5}
    assert json.loads(jcs(value)) == value
    assert jcs(value) == b'{"a":1.5,"z":[3,{"a":"x","b":1}]}'


# --- jcs is byte-identical to the reference implementation (the PyPI package rfc8785) ---------------

_numbers = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.floats(
    allow_nan=False, allow_infinity=False
)
_text = st.text(st.characters(exclude_categories=("Cs",)))  # any Unicode scalar: controls, BMP and beyond
_json = st.recursive(
    st.none() | st.booleans() | _numbers | _text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=2000, deadline=None)
@given(_json)
def test_jcs_matches_the_reference_implementation(value: object) -> None:
    assert jcs(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "number",
    [
        1e21,
        1e-7,
        1e-6,
        100.0,
        1e16,
        1.5e17,
        5e-324,
        1.7976931348623157e308,
        -0.0,
        2.5e-5,
        0.1 + 0.2,
        1e20 + 1,
    ],
)
def test_jcs_numbers_at_the_notation_boundaries(number: float) -> None:
    assert jcs(number) == rfc8785.dumps(number)
    assert json.loads(jcs(number)) == number  # the shortest form still round-trips


def test_jcs_orders_keys_by_utf16_code_units() -> None:
    # By code point U+FF5E comes before U+1F600; by UTF-16 code units it comes after (0xFF5E > 0xD83D).
    value = {"\U0001f600": 1, "\uff5e": 2, "a": 3}
    assert jcs(value) == rfc8785.dumps(value)
    assert list(json.loads(jcs(value))) == ["a", "\U0001f600", "\uff5e"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2**53, {1: "x"}, "\ud800", {"k": object()}])
def test_jcs_refuses_what_has_no_canonical_form(bad: object) -> None:
    with pytest.raises(CanonicalizationError):
        jcs(bad)
