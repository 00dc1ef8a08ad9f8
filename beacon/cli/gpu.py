"""CLI: gpu commands (see beacon/cli/__init__.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""


def ollama_metrics_main() -> None:
    """Entry point of the ``ollama-metrics`` console script."""
    raise SystemExit("ollama-metrics: not implemented yet")
