"""Pydantic models of the documents Beacon accepts and issues."""

from __future__ import annotations

from pydantic import ValidationError


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """A refused document's errors as ``[{path, message, type}]``: dotted paths (``$`` for the whole
    document), messages without pydantic's ``Value error,`` prefix. The ``errors`` of a problem+json."""
    return [
        {
            "path": ".".join(str(part) for part in error["loc"]) or "$",
            "message": str(error["msg"]).removeprefix("Value error, "),
            "type": str(error["type"]),
        }
        for error in exc.errors(include_url=False)
    ]
