"""Time as Beacon writes it: epoch seconds in the store, RFC 3339 UTC in every API response."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_time(ts: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC with microseconds (``2025-08-30T17:15:00.123456Z``); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
