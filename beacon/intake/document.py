"""Reading a submitted body: strict JSON, one object, no repeated keys.

Repeated keys are refused because two parsers may keep different copies: the verifier would check
one value while a later reader of the stored document sees the other. Nesting is bounded
(:data:`MAX_JSON_DEPTH`) before anything recursive — the parser, the surrogate walk, canonical
forms, the model — sees the value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from beacon.intake.errors import IntakeError

_MAYBE_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")

MAX_JSON_DEPTH = 64
"""Arrays and objects nested deeper than this are refused (a JobSpec needs fewer than ten)."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(rb"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(rb"\{\}|\[\]")


def exceeds_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``body`` nests arrays/objects more than ``limit`` deep (without recursion).

    Brackets inside strings do not count. Peels the innermost level ``limit`` times; anything left is
    deeper. Text that is not JSON may be reported either way: the parser refuses it anyway.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    skeleton = _NOT_A_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    for _ in range(limit):
        skeleton, peeled = _INNERMOST_PAIR.subn(b"", skeleton)
        if not skeleton or not peeled:
            return False
    return bool(skeleton)


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
    if exceeds_depth(body):
        raise IntakeError("invalid_json", too_deep_detail())
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


def too_deep_detail() -> str:
    """The refusal's wording, shared by intake and the HTTP edge."""
    return f"the body nests arrays/objects more than {MAX_JSON_DEPTH} levels deep"


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value) if not value.isascii() else False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False
