"""The benchmarks Beacon runs: one definition each, asked by every place that treats them differently.

A JobSpec's ``benchmark.name`` is one of these names (decision 1503). The definition says how the
planner picks the job's questions, whether an execution calls a model backend at all, and whether
the job's answers are compared by a difference report. Intake, the worker, the report, the diffs
API and the harness ask it; none of them compares a benchmark's name.

A command-style JobSpec (``benchmark.container.command``) names its own benchmark: it is planned by
the container path, not by its definition, and :func:`definition_for` treats an unlisted name as
a benchmark that calls a backend and is compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from beacon.benchmark.questions import NOOP_QUESTION

NO_BACKEND = "noop"
"""The backend named in a receipt, and in a worker's status, when no model backend serves it."""


@dataclass(frozen=True)
class BenchmarkDefinition:
    """One benchmark: how its questions are planned, what runs them, what analyses them."""

    name: str
    pseudo_question: str | None = None
    """The one question id it asks in place of questions (a job may list none); None: it asks questions."""
    default_questions: tuple[str, ...] = ()
    """What it asks when the job lists no questions and it does not ask its modes' sets."""
    asks_mode_sets: bool = False
    """When the job lists no questions: each of its modes' versioned sets (``options.only_questions`` narrows)."""
    calls_model: bool = True
    """False: an execution ends without a backend call, on any worker, executor or not."""
    compared: bool = True
    """True: a job with answers from two regions or more gets a signed difference report."""


BIAS_DETECTION = BenchmarkDefinition("bias-detection", asks_mode_sets=True)
WHO_ARE_YOU = BenchmarkDefinition("who-are-you", default_questions=("identity_basic",))
NOOP = BenchmarkDefinition("noop", pseudo_question=NOOP_QUESTION, calls_model=False, compared=False)

BENCHMARKS: dict[str, BenchmarkDefinition] = {b.name: b for b in (BIAS_DETECTION, WHO_ARE_YOU, NOOP)}
"""Name → definition, in the order error messages list them."""


def benchmark_named(name: str) -> BenchmarkDefinition | None:
    """The registered benchmark of that name (None: the planner refuses it)."""
    return BENCHMARKS.get(name)


def definition_for(name: str) -> BenchmarkDefinition:
    """The definition a stored job runs under: its registered one, else a command-style job's own benchmark."""
    return BENCHMARKS.get(name) or BenchmarkDefinition(name)


def not_compared() -> list[str]:
    """The names of the benchmarks no difference report analyses (sorted: a stable SQL ``NOT IN``)."""
    return sorted(b.name for b in BENCHMARKS.values() if not b.compared)
