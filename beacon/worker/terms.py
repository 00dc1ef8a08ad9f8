"""What a worker needs from a job: its benchmark, decoding options, deadlines and success rules.

Read from ``jobs.spec``, the normalised JobSpec intake stores (``JobSpec.model_dump(mode="json")``:
durations in seconds). Parsed once per job and cached by the worker; a job's spec never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beacon.executors.base import DecodingOptions
from beacon.models.jobspec import Constraints, ExecutionOptions, parse_duration

_DEFAULT_CONSTRAINTS = Constraints()
_DEFAULT_OPTIONS = ExecutionOptions()
_MAX_DURATION_S = 24 * 3600.0


def _seconds(value: Any, default: float) -> float:
    """A duration from the stored spec: seconds (the normal form), or a Go duration string."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int | float):
        # JobSpec caps durations at 24 h, so a larger number can only be Go nanoseconds.
        seconds = float(value) if value <= _MAX_DURATION_S else value / 1e9
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value).total_seconds()
        except ValueError:
            return default
    else:
        return default
    return seconds if seconds > 0 else default


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _attempts(max_retries: Any) -> int | None:
    if isinstance(max_retries, int) and not isinstance(max_retries, bool) and max_retries >= 0:
        return max_retries + 1
    return None


@dataclass(frozen=True)
class JobTerms:
    job_id: str
    benchmark: str
    benchmark_version: str | None
    spec_hash: str
    options: DecodingOptions
    timeout_s: float
    """The job's execution budget, counted from its first execution's start."""
    provider_timeout_s: float
    """One attempt's budget, counted from that attempt's start."""
    min_regions: int
    min_success_rate: float
    max_attempts: int | None = None
    """The spec's retry budget (``constraints.max_retries`` + 1); None: the deployment's MAX_ATTEMPTS."""

    @classmethod
    def from_spec(cls, job_id: str, spec: Any, spec_hash: str) -> JobTerms:
        spec = spec if isinstance(spec, dict) else {}
        benchmark = spec.get("benchmark") if isinstance(spec.get("benchmark"), dict) else {}
        constraints = spec.get("constraints") if isinstance(spec.get("constraints"), dict) else {}
        options = spec.get("options") if isinstance(spec.get("options"), dict) else {}
        defaults = _DEFAULT_OPTIONS
        return cls(
            job_id=job_id,
            benchmark=str(benchmark.get("name") or "bias-detection"),
            benchmark_version=benchmark.get("version") if isinstance(benchmark.get("version"), str) else None,
            spec_hash=spec_hash,
            options=DecodingOptions(
                temperature=_number(options.get("temperature"), defaults.temperature),
                seed=int(_number(options.get("seed"), defaults.seed)),
                max_tokens=int(_number(options.get("max_tokens"), defaults.max_tokens)),
                top_p=_number(options.get("top_p"), defaults.top_p),
            ),
            timeout_s=_seconds(constraints.get("timeout"), _DEFAULT_CONSTRAINTS.timeout.total_seconds()),
            provider_timeout_s=_seconds(
                constraints.get("provider_timeout"), _DEFAULT_CONSTRAINTS.provider_timeout.total_seconds()
            ),
            min_regions=int(_number(constraints.get("min_regions"), _DEFAULT_CONSTRAINTS.min_regions)),
            min_success_rate=_number(
                constraints.get("min_success_rate"), _DEFAULT_CONSTRAINTS.min_success_rate
            ),
            max_attempts=_attempts(constraints.get("max_retries")),
        )

    @property
    def rules(self) -> tuple[int, float]:
        return self.min_regions, self.min_success_rate

    def job_deadline(self, job_started_at: float | None) -> float | None:
        return job_started_at + self.timeout_s if job_started_at is not None else None
