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
from json.encoder import encode_basestring as _encode_string
from pathlib import Path
from typing import Any


class CanonicalizationError(ValueError):
    """The value cannot be put in canonical form (non-finite number, integer out of range, …)."""


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value.

    Byte-identical to the reference ``rfc8785`` package (a property test holds them together) and
    three to four times faster: strings go through the standard library's C string encoder; only
    numbers and key order are done here. Receipts are canonicalised on the worker's hot path.
    """
    parts: list[str] = []
    try:
        _jcs_encode(value, parts)
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalizationError("cannot canonicalize (RFC 8785): lone surrogate in a string") from exc
    except RecursionError as exc:
        raise CanonicalizationError("cannot canonicalize (RFC 8785): nested too deeply") from exc


_JCS_INT_MAX = 2**53 - 1


def _jcs_encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -_JCS_INT_MAX <= value <= _JCS_INT_MAX:
            raise CanonicalizationError(f"cannot canonicalize (RFC 8785): {value} is outside ±(2**53-1)")
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_jcs_number(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        keys = list(value)
        try:
            # RFC 8785 §3.2.3: order by UTF-16 code units; code-point order agrees unless a key has a
            # character beyond the BMP, so the (slower) UTF-16 sort is only needed for non-ASCII keys.
            if "".join(keys).isascii():
                keys.sort()
            else:
                keys.sort(key=lambda key: key.encode("utf-16-be", "surrogatepass"))
        except (TypeError, AttributeError) as exc:
            raise CanonicalizationError(
                "cannot canonicalize (RFC 8785): object keys must be strings"
            ) from exc
        append = out.append
        append("{")
        for index, key in enumerate(keys):
            if index:
                append(",")
            append(_encode_string(key))
            append(":")
            _jcs_encode(value[key], out)
        append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _jcs_encode(item, out)
        out.append("]")
    else:
        raise CanonicalizationError(
            f"cannot canonicalize (RFC 8785): unsupported type {type(value).__name__}"
        )


def _jcs_number(number: float) -> str:
    """ECMAScript Number::toString (RFC 8785 §3.2.2.3), from Python's shortest round-trip digits."""
    if math.isnan(number) or math.isinf(number):
        raise CanonicalizationError(f"cannot canonicalize (RFC 8785): {number} has no JSON form")
    if number == 0:
        return "0"
    if number < 0:
        return "-" + _jcs_number(-number)
    text = repr(number)
    if "e" not in text:
        # 1e-4 <= number < 1e16: Python's shortest form is already ECMAScript's, but for a trailing ".0".
        return text[:-2] if text.endswith(".0") else text
    _sign, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k  # the value is 0.digits × 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Lower-case hex SHA-256 of a file, read in 1 MiB pieces (model files are hundreds of MiB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
    try:
        _go_encode(value, out)
    except RecursionError as exc:
        raise CanonicalizationError("cannot canonicalize (Go form): nested too deeply") from exc
    return "".join(out).encode("utf-8")
