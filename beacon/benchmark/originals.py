"""The original runner's JobSpecs and question file, kept verbatim as data (``data/original-jobspecs``).

The Day-1 plan's "Optional: Use Provided JobSpecs" phase signs and submits the three unified specs
from here; the tests run all ten files through intake. Read as bytes: nothing here is rewritten.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

UNIFIED_SPECS: tuple[str, ...] = (
    "llama-bias-detection-unified.json",
    "qwen-bias-detection-unified.json",
    "mistral-bias-detection-unified.json",
)
V1_SPECS: tuple[str, ...] = (
    "llama-bias-detection.json",
    "qwen-bias-detection.json",
    "mistral-bias-detection.json",
)
GO_SIGNED: tuple[str, ...] = ("day1-test-job.signed.json", "minimal.jobspec.signed.json", "who.signed.json")
QUESTION_FILE = "questions-phase2.json"
ALL_FILES: tuple[str, ...] = (*UNIFIED_SPECS, *V1_SPECS, *GO_SIGNED, QUESTION_FILE)


def original_path(name: str) -> Path:
    """The path of one original file (KeyError for a name that is not one of them)."""
    if name not in ALL_FILES:
        raise KeyError(f"{name!r} is not one of the original files: {', '.join(ALL_FILES)}")
    return Path(str(resources.files("beacon.benchmark").joinpath(f"data/original-jobspecs/{name}")))
