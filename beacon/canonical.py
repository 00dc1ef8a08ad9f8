"""Canonical JSON: one function per scheme.

* :func:`jcs` — RFC 8785 (JSON Canonicalization Scheme). What Beacon signs and hashes.
* :func:`go_canonical` — the byte form the original Go runner signed (reference §4.2): keys sorted
  byte-wise, compact, Go's HTML escaping of ``& < >``, U+2028/U+2029 escaped, numbers as float64 in
  Go's shortest round-trip form, other non-ASCII raw. Used only to verify legacy signatures.
"""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal
from typing import Any

import rfc8785


class CanonicalizationError(ValueError):
    """The value cannot be put in canonical form (non-finite number, integer out of range, …)."""


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"cannot canonicalize (RFC 8785): {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def jcs_sha256(value: Any) -> str:
    """Hex SHA-256 of the RFC 8785 bytes of ``value``: the one content hash of a JSON document."""
    return sha256_hex(jcs(value))


# --- Go encoding/json compatible form ---------------------------------------------------------------

_GO_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _go_string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[char])
        elif code < 0x20 or char in "&<>" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # A lone surrogate escape: Go's decoder turns it into U+FFFD before anything is signed.
            out.append("\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _go_number(value: int | float) -> str:
    try:
        number = float(value)
    except OverflowError as exc:
        raise CanonicalizationError(f"number {value} does not fit in a float64") from exc
    if math.isnan(number) or math.isinf(number):
        raise CanonicalizationError("NaN and infinities have no JSON form")
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    shortest = Decimal(repr(number))  # repr is the shortest round-trip form, like Go's -1 precision
    magnitude = abs(number)
    if 1e-6 <= magnitude < 1e21:
        text = format(shortest, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    sign, digits, exponent = shortest.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    exp10 = exponent + len(mantissa) - 1
    body = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{body}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}".replace("e-0", "e-", 1)


def _go_encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(_go_number(value))
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _go_encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value, key=lambda k: k.encode("utf-8", "surrogatepass"))):
            if index:
                out.append(",")
            out.append(_go_string(key))
            out.append(":")
            _go_encode(value[key], out)
        out.append("}")
    else:
        raise CanonicalizationError(f"unsupported JSON value of type {type(value).__name__}")


def go_canonical(value: Any) -> bytes:
    """The canonical bytes the original Go runner signed for ``value`` (reference §4.2)."""
    out: list[str] = []
    _go_encode(value, out)
    return "".join(out).encode("utf-8")
