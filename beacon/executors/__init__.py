"""Executor backends: llamacpp (embedded), ollama (GPU hosts), golem (the Golem network through yapapi).

``create_executor(settings, region)`` builds a region's executor; backends are imported on demand, so
neither llama-cpp-python nor yapapi is needed to import this package.
"""

from beacon.executors.base import (
    DecodingOptions,
    ExecutionRequest,
    ExecutionResult,
    Executor,
    ExecutorConfigError,
    ExecutorError,
    PermanentExecutorError,
    TransientExecutorError,
)
from beacon.executors.registry import BACKENDS, create_executor

__all__ = [
    "BACKENDS",
    "DecodingOptions",
    "ExecutionRequest",
    "ExecutionResult",
    "Executor",
    "ExecutorConfigError",
    "ExecutorError",
    "PermanentExecutorError",
    "TransientExecutorError",
    "create_executor",
]
