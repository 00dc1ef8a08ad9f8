"""Running the project's notebooks as a person would (papermill, the ``beacon`` kernel, the notebook's
own folder as working directory), and what they leave under notebooks/."""

from __future__ import annotations

import subprocess
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def run_notebook(notebook: Path, executed: Path, **parameters: object) -> str:
    """Execute ``notebook`` into ``executed`` with ``parameters``; the executed notebook's text."""
    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters=parameters,
        kernel_name="beacon",
        cwd=str(notebook.parent),
        progress_bar=False,
    )
    return executed.read_text()


def untracked_under_notebooks() -> list[str]:
    """Files under notebooks/ that git does not track (ignored ones too): what a run wrote there."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "notebooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.startswith(("??", "!!"))]
