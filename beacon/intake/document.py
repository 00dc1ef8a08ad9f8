"""Reading a submitted body: strict JSON, one object, no repeated keys.

Repeated keys are refused because two parsers may keep different copies: the verifier would check
one value while a later reader of the stored document sees the other.
"""

from __future__ import annotations

import json
import re
from typing import Any

from beacon.intake.errors import IntakeError

_MAYBE_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_document(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body`` (UTF-8); IntakeError ``invalid_json``/``invalid_body``/``duplicate_key``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntakeError("invalid_json", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        raise IntakeError(
            "duplicate_key",
            f"the key {exc.key!r} appears twice in one object",
            errors=[{"path": exc.key, "message": "repeated key", "type": "duplicate_key"}],
        ) from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise IntakeError("invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise IntakeError("invalid_body", f"expected a JSON object, got {type(value).__name__}")
    if _MAYBE_SURROGATE.search(text) and _has_lone_surrogate(value):  # only \uD800-\uDFFF escapes make one
        raise IntakeError("invalid_json", "the body contains an unpaired UTF-16 surrogate escape")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value) if not value.isascii() else False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False
