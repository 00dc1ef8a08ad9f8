"""Canonical JSON: RFC 8785 and the Go-compatible legacy form."""

from __future__ import annotations

import json

import pytest

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
