"""The run summary (``summary.json``): its schema name and its reader.

The summary holds every phase's results, the criteria and the verdict of one run; the report,
the comparison of runs and ``beacon day1`` read it back through :func:`load_summary`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUMMARY_SCHEMA = "beacon.run-summary/v1"


def load_summary(run_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` of a run folder; ValueError if it is unreadable or not a run summary."""
    path = run_dir / "summary.json"
    try:
        summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the run summary ({exc})") from exc
    if summary.get("schema") != SUMMARY_SCHEMA:
        raise ValueError(f"{path}: not a Beacon run summary")
    return summary
