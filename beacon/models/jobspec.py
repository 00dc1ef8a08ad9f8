"""The JobSpec: compatible with the original runner's shape (reference §3.1), strict about the rest.

Unknown fields are rejected everywhere except inside free-form objects (``metadata``,
``benchmark.metadata``, ``benchmark.input.data``, ``benchmark.scoring.parameters``): a field the
server does not understand must not ride along unchecked. The model is built from the *verified*
document; it never feeds the bytes that were signed (see ``beacon.intake``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    WithJsonSchema,
    computed_field,
    field_validator,
    model_validator,
)

from beacon.benchmark.questions import Mode, QuestionSet, set_for_mode
from beacon.benchmark.registry import benchmark_named
from beacon.benchmark.spec_metrics import canonical_metric
from beacon.config import canonical_region

_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


MAX_DURATION_S = (2**63 - 1) / 1e9
"""Go's largest duration (int64 nanoseconds, about 292 years): anything longer is not a Go duration."""


def _seconds(total: float, value: Any) -> timedelta:
    if not total <= MAX_DURATION_S:  # also refuses NaN
        raise ValueError(f"{str(value)[:40]!r} is longer than any Go duration")
    return timedelta(seconds=total)


def _nanoseconds(count: int | float, value: Any) -> timedelta:
    if count > 2**63 - 1:  # compared before dividing: a huge int does not fit in a float
        raise ValueError(f"{str(value)[:40]!r} is longer than any Go duration")
    return _seconds(count / 1e9, value)


def parse_duration(value: Any) -> timedelta:
    """A Go duration: integer nanoseconds (``600000000000``) or a string (``"10m"``, ``"1h30m"``, ``"300s"``)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _nanoseconds(value, value)
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return timedelta(0)
        if text.isdigit():
            return _nanoseconds(int(text), value)
        position, total = 0, 0.0
        for match in _GO_DURATION_PART.finditer(text):
            if match.start() != position:
                break
            total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
            position = match.end()
        if position == len(text) and position > 0:
            return _seconds(total, value)
        raise ValueError(f"{value!r} is not a duration (use nanoseconds or e.g. '10m', '1h30m', '300s')")
    raise ValueError("expected a duration: integer nanoseconds or a string like '10m'")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "description": "Go duration in nanoseconds"},
                {
                    "type": "string",
                    "pattern": r"^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$",
                    "examples": ["10m"],
                },
            ]
        },
        mode="validation",
    ),
]


def _region(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a region is a string")
    return canonical_region(value)


Region = Annotated[str, BeforeValidator(_region)]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"
"""Job ids appear as one URL path segment (``/api/v1/jobs/{id}``), so no ``/``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    cpu: str | int | float | None = None
    memory: str | None = None
    gpu: str | int | None = None


class Container(_Strict):
    image: str = Field(min_length=1, max_length=512)
    tag: str | None = None
    command: list[str] | None = None
    environment: dict[str, str] | None = None
    resources: Resources | None = None


class BenchmarkInput(_Strict):
    type: str = "prompt"
    data: dict[str, Any] | None = None
    hash: str | None = None


class Scoring(_Strict):
    method: str = "default"
    parameters: dict[str, Any] | None = None
    metrics: dict[Mode, list[str]] | None = None
    """Per mode, the scores the author asks for (``docs/analysis.md``, "Scores a JobSpec asks for")."""
    thresholds: dict[str, float] | None = None
    """Metric → bound; each becomes a verdict of the difference report (``within`` / ``exceeds`` …)."""

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is None:
            return None
        return {
            mode: list(dict.fromkeys(canonical_metric(m) for m in names)) for mode, names in value.items()
        }

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        return {canonical_metric(name): bound for name, bound in value.items()}


class Benchmark(_Strict):
    name: str = Field(min_length=1, max_length=128)
    version: str | None = None
    title: str | None = Field(None, max_length=256)
    """A display name (the original dialects' ``benchmark.name``); ``name`` says what runs."""
    description: str | None = None
    modes: list[Mode] | None = None
    """bias-detection: ``simple`` asks the built-in 8 questions, ``advanced`` the context variants."""
    container: Container | None = None
    input: BenchmarkInput | None = None
    scoring: Scoring | None = None
    metadata: dict[str, Any] | None = None


class ProviderFilter(_Strict):
    region: Region | None = None
    min_score: StrictFloat | None = None
    max_price: StrictFloat | None = None
    whitelist: list[str] | None = None
    blacklist: list[str] | None = None


class Constraints(_Strict):
    regions: list[Region] = Field(default_factory=list)
    min_regions: StrictInt = Field(1, ge=0)
    min_success_rate: StrictFloat = Field(0.67, ge=0.0, le=1.0)
    timeout: Duration = timedelta(minutes=10)
    provider_timeout: Duration = timedelta(minutes=5)
    max_cost: StrictFloat | None = Field(None, ge=0)
    providers: list[ProviderFilter] | None = None
    max_retries: StrictInt | None = Field(None, ge=0, le=20)
    """Retries after the first attempt of each execution (attempts = max_retries + 1); None: the
    deployment's ``MAX_ATTEMPTS``."""

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # APAC and ASIA are one region: keep the first, in order

    @field_validator("provider_timeout", mode="before")
    @classmethod
    def _go_zero_is_default(cls, value: Any) -> Any:
        """The Go runner wrote ``provider_timeout: 0`` (its zero value) for "the default" (5 min)."""
        return timedelta(minutes=5) if value == 0 and not isinstance(value, bool) else value

    @field_validator("timeout", "provider_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        if value > timedelta(hours=24):
            raise ValueError("must be at most 24h")
        return value


class ModelRef(_Strict):
    id: str = Field(min_length=1, max_length=128)
    name: str | None = None
    provider: str | None = None
    container_image: str | None = None
    regions: list[Region] | None = None


class WalletAuth(_Strict):
    address: str
    signature: str
    message: str
    chainId: StrictInt | None = None
    nonce: str | None = None
    expiresAt: str | int | None = None


PromptContext = Literal["neutral", "region", "both"]


class ExecutionOptions(_Strict):
    """Decoding options and the system-prompt choice; Beacon's own, recorded in every receipt."""

    temperature: StrictFloat = Field(0.0, ge=0.0, le=2.0)
    seed: StrictInt = Field(42, ge=0, lt=2**31)
    max_tokens: StrictInt = Field(256, ge=1, le=4096)
    top_p: StrictFloat = Field(1.0, gt=0.0, le=1.0)
    prompt_context: PromptContext = "neutral"
    """``neutral``: one system prompt for all regions; ``region``: "based in {region}";
    ``both``: run both, so deployment-induced and prompt-induced differences can be told apart."""
    only_questions: tuple[str, ...] | None = Field(None, min_length=1, max_length=200)
    """A bounded run: ask only these ids of the job's mode question sets (each must be in one of them);
    unset, every question of each mode's set. The job's spec records it, so a bounded run says so."""


def _model_ref(value: Any) -> Any:
    if isinstance(value, str):
        return {"id": value}
    return value


class JobSpec(_Strict):
    """A JobSpec in its full shape. Build it with :meth:`from_document` from a verified document."""

    id: str = Field(pattern=ID_PATTERN)
    jobspec_id: str | None = None
    version: str = Field("1", max_length=32)
    benchmark: Benchmark
    constraints: Constraints = Field(default_factory=Constraints)
    metadata: dict[str, Any] = Field(default_factory=dict)
    questions: list[str] | None = None
    models: list[Annotated[ModelRef, BeforeValidator(_model_ref)]] | None = None
    runs: StrictInt = Field(1, ge=1, le=10)
    options: ExecutionOptions = Field(default_factory=ExecutionOptions)
    wallet_auth: WalletAuth | None = None
    created_at: datetime | None = None
    signature: str | None = None
    public_key: str | None = None
    dialect: dict[str, Any] | None = None
    """Set by the runner for a document in an original dialect: its name and every field's fate
    (``beacon.models.dialects``); never accepted from a submitter."""

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> JobSpec:
        """The JobSpec a verified document describes, in any dialect (``beacon.models.dialects``).

        Raises DialectError (an original dialect's field cannot be run as asked) or ValidationError.
        """
        from beacon.models.dialects import translate

        data, record = translate(document)
        if record is None:
            return cls.model_validate(data)
        return cls.model_validate({**data, "dialect": record}, context={"dialect_translation": True})

    @model_validator(mode="before")
    @classmethod
    def _minimal_form(cls, data: Any, info: ValidationInfo) -> Any:
        """Accept the Day-1 minimal form: ``benchmark`` given by name, ``container`` at top level."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "dialect" in data and not (info.context or {}).get("dialect_translation"):
            raise ValueError(
                "dialect is recorded by the runner when it reads an original dialect; do not submit it"
            )
        container = data.pop("container", None)
        benchmark = data.get("benchmark")
        if isinstance(benchmark, str):
            benchmark = {"name": benchmark}
        if container is not None:
            if not isinstance(benchmark, dict):
                raise ValueError("container given but benchmark is missing")
            if benchmark.get("container") is not None:
                raise ValueError("container given both at top level and in benchmark")
            benchmark = {**benchmark, "container": container}
        if benchmark is not None:
            data["benchmark"] = benchmark
        if not data.get("id") and data.get("jobspec_id"):
            data["id"] = data["jobspec_id"]
        return data

    @property
    def modes(self) -> list[Mode]:
        """The question-set modes a bias-detection job runs (``simple`` unless it says otherwise)."""
        return list(self.benchmark.modes or ["simple"])

    @computed_field  # type: ignore[prop-decorator]
    @property
    def question_sets(self) -> dict[str, dict[str, Any]] | None:
        """Mode → the question set it asks (version, computed sha256): recorded with the job."""
        benchmark = benchmark_named(self.benchmark.name)
        if benchmark is None or not benchmark.asks_mode_sets or self.questions:
            return None
        sets: dict[str, QuestionSet] = {mode: set_for_mode(mode) for mode in self.modes}
        return {mode: qs.describe() for mode, qs in sets.items()}

    @property
    def model_ids(self) -> list[str]:
        """Models from ``models``, else ``metadata.models`` (strings or ``{id}``), else empty."""
        if self.models:
            return list(dict.fromkeys(m.id for m in self.models))
        raw = self.metadata.get("models")
        ids: list[str] = []
        if isinstance(raw, list):
            for item in raw:
                if isinstance(item, str) and item:
                    ids.append(item)
                elif isinstance(item, dict) and isinstance(item.get("id"), str):
                    ids.append(item["id"])
        elif isinstance(self.metadata.get("model"), str):
            ids.append(self.metadata["model"])
        return list(dict.fromkeys(ids))
