"""An independent model of the Go runner's canonical JSON (reference §4.2), for test vectors only.

Written differently from ``beacon.canonical.go_canonical`` on purpose: strings through the standard
library's encoder plus Go's extra escapes, floats through numpy's shortest round-trip formatter.
If both implementations agree on tricky documents, and both agree with hand-written golden bytes,
a bug would have to be made twice, the same way.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

_GO_EXTRA_ESCAPES = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)  # escapes " \\ \n \r \t \b \f and other C0 as \u00XX
    return "".join(_GO_EXTRA_ESCAPES.get(ch, ch) for ch in encoded)


def go_float(value: float) -> str:
    """strconv.FormatFloat(f, 'f' or 'e', -1, 64) as encoding/json picks it."""
    value = float(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = np.format_float_scientific(np.float64(value), unique=True, trim="-", exp_digits=2)
        mantissa, exponent = text.split("e")
        sign = exponent[0]
        digits = exponent[1:].lstrip("0") or "0"
        if sign == "+" and len(digits) < 2:
            digits = digits.rjust(2, "0")  # Go: e+21 keeps two digits, e-07 becomes e-7
        return f"{mantissa}e{sign}{digits}"
    return np.format_float_positional(np.float64(value), unique=True, trim="-")


def go_encode(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_float(value)
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, list):
        return "[" + ",".join(go_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return "{" + ",".join(go_string(k) + ":" + go_encode(value[k]) for k in keys) + "}"
    raise TypeError(type(value))


def go_bytes(value: Any) -> bytes:
    return go_encode(value).encode("utf-8")


def portal_prune(value: dict[str, Any]) -> dict[str, Any]:
    """The portal-v1 cleaning step, written from the reference's prose."""
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            item = portal_prune(item)
            if len(item) == 0:
                continue
        elif (
            item is None
            or (isinstance(item, str) and item == "")
            or (type(item) in (int, float) and item == 0)
        ):
            continue
        cleaned[key] = item
    return cleaned


def go_strip_message(document: dict[str, Any]) -> bytes:
    return go_bytes({k: v for k, v in document.items() if k not in ("signature", "public_key")})


def portal_v1_message(document: dict[str, Any]) -> bytes:
    body = {k: v for k, v in document.items() if k not in ("id", "created_at", "signature", "public_key")}
    return go_bytes(portal_prune(body))
