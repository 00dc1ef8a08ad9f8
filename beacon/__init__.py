"""Beacon: verifiable, multi-region LLM bias benchmarks and the Day-1 live test plan of their runner."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("beacon")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
