"""The original runner's two JobSpec dialects, read as what they are (``docs/jobspecs.md``).

* ``original-v1`` — the llm-benchmark specs (``benchmark.container``, ``benchmark.input``,
  ``constraints.max_execution_time/memory_limit/cpu_cores``, top-level ``scoring.method/metrics``);
* ``original-v2`` — the "unified" specs (``benchmark.category/modes``, top-level ``container``,
  ``input``, ``scoring.algorithm/modes/thresholds``, ``constraints.timeout/max_retries/regions``,
  ``output``).

:func:`translate` maps one of them, field by field, onto Beacon's JobSpec shape and returns the
*ledger*: every leaf of the document with what it does here — ``drives`` (and the Beacon field it
became) or ``not_used`` (and why). A field neither dialect knows is refused (``unknown_fields``),
exactly as in a Beacon document. The translation runs on the verified document; the signed bytes
are stored verbatim beside it and never rebuilt from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from beacon.benchmark.questions import MODES, context_question_set, question_set
from beacon.benchmark.spec_metrics import canonical_metric

DialectName = Literal["beacon", "original-v1", "original-v2"]

IMAGE_MODELS: dict[str, str] = {
    "ghcr.io/jamie-anson/project-beacon/llama-3.2-1b": "llama3.2:1b",
    "ghcr.io/jamie-anson/project-beacon/qwen-2.5-1.5b": "qwen2.5:1.5b",
    "ghcr.io/jamie-anson/project-beacon/mistral-7b": "mistral:7b",
    "ghcr.io/jamie-anson/project-beacon-llama-3.2-1b": "llama3.2:1b",
    "ghcr.io/jamie-anson/project-beacon-qwen-2.5-1.5b": "qwen2.5:1.5b",
    "ghcr.io/jamie-anson/project-beacon-mistral-7b": "mistral:7b",
}
"""The original's benchmark images (repository, without tag) → the model each one pulled (reference
§7.3: ``llama3.2:1b``, ``qwen2.5:1.5b``, ``mistral:7b``). Exact names only: no guessing from parts."""

QUESTION_FILES: dict[str, str] = {"questions.json": "simple", "questions-phase2.json": "advanced"}
"""The original's question files → the mode whose (versioned) set Beacon ships for them."""

SCORING_ALGORITHMS = ("unified_bias_analysis",)
V1_SCORING_METHODS = ("automated",)
OUTPUT_FORMATS = ("json",)

_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_PASSTHROUGH = ("metadata", "signature", "public_key", "created_at", "options")
"""Beacon fields a translated document may carry as they are (the signer adds ``metadata``)."""

NO_CONTAINER = (
    "this runner does not start the original's benchmark container for bias jobs: the model runs on "
    "each region's backend (the image selects the model, see models)"
)


class DialectError(ValueError):
    """The document is in an original dialect but cannot be run as asked; ``code`` is the problem code."""

    def __init__(self, code: str, message: str, path: str) -> None:
        super().__init__(message)
        self.code = code
        self.path = path


@dataclass
class _Ledger:
    document: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def get(self, path: str) -> Any:
        value: Any = self.document
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def drives(self, path: str, maps_to: str) -> Any:
        value = self.get(path)
        if value is not None:
            self._record(path, value, {"use": "drives", "maps_to": maps_to})
        return value

    def not_used(self, path: str, reason: str) -> None:
        value = self.get(path)
        if value is None:
            return
        if isinstance(value, dict):  # each leaf is listed: a reader sees every value that was signed
            for key in value:
                self.not_used(f"{path}.{key}", reason)
            return
        self._record(path, value, {"use": "not_used", "reason": reason})

    def _record(self, path: str, value: Any, what: dict[str, Any]) -> None:
        self.seen.add(path)
        self.entries.append({"path": path, "value": value, **what})

    def unknown(self) -> list[str]:
        """Leaves of the document no rule consumed (free-form Beacon objects count as one leaf)."""
        found: list[str] = []

        def walk(value: Any, prefix: str) -> None:
            if prefix in self.seen:
                return
            if isinstance(value, dict) and value and prefix.split(".")[0] not in _PASSTHROUGH:
                for key, item in value.items():
                    walk(item, f"{prefix}.{key}" if prefix else key)
            elif prefix:
                found.append(prefix)

        walk(self.document, "")
        return found


def detect(document: dict[str, Any]) -> DialectName:
    """Which dialect a document is written in (Beacon's own unless it has an original's marks)."""
    benchmark = document.get("benchmark")
    constraints = document.get("constraints")
    if isinstance(benchmark, dict) and (
        "category" in benchmark
        or "modes" in benchmark
        or any(key in document for key in ("input", "output"))
        or (isinstance(document.get("scoring"), dict) and "algorithm" in document["scoring"])
    ):
        return "original-v2"
    if isinstance(benchmark, dict) and (
        isinstance(document.get("scoring"), dict)
        or (
            isinstance(constraints, dict)
            and any(k in constraints for k in ("max_execution_time", "memory_limit", "cpu_cores"))
        )
    ):
        return "original-v1"
    return "beacon"


def model_for_image(image: Any, path: str) -> str:
    """The model an original benchmark image ran; DialectError ``unknown_image`` otherwise."""
    if not isinstance(image, str):
        raise DialectError("invalid_jobspec", "the image must be a string", path)
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    model = IMAGE_MODELS.get(repository)
    if model is None:
        raise DialectError(
            "unknown_image",
            f"image {image!r} is not one of the original's benchmark images; known: {', '.join(IMAGE_MODELS)}",
            path,
        )
    return model


def _declared_hash(ledger: _Ledger, path: str, modes: list[str]) -> dict[str, Any] | None:
    declared = ledger.get(path)
    if declared is None:
        return None
    asked = {m: (question_set() if m == "simple" else context_question_set()).sha256 for m in modes}
    if not isinstance(declared, str):
        raise DialectError("invalid_jobspec", "the input hash must be a string", path)
    if _SHA256.match(declared):
        if declared not in asked.values():
            raise DialectError(
                "input_hash_mismatch",
                f"{path} is {declared}, but the question sets this job asks have "
                + ", ".join(f"{m} {h}" for m, h in asked.items()),
                path,
            )
        status = "matches"
    else:
        status = "declared, not a digest"
    ledger.drives(path, "dialect.declared_input_hash (compared with the computed question-set hashes)")
    return {"declared": declared, "status": status, "computed": asked}


def _modes(ledger: _Ledger, path: str) -> list[str]:
    raw = ledger.drives(path, "benchmark.modes (question sets and metrics)")
    if raw is None:
        return ["simple"]
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        raise DialectError("invalid_jobspec", "modes must be a non-empty list of strings", path)
    for mode in raw:
        if mode not in MODES:
            raise DialectError("unknown_mode", f"unknown mode {mode!r}; known: {', '.join(MODES)}", path)
    return list(dict.fromkeys(raw))


def _metrics(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise DialectError("invalid_jobspec", "metrics must be a list of names", path)
    try:
        return list(dict.fromkeys(canonical_metric(m) for m in value))
    except ValueError as exc:
        raise DialectError("unknown_metric", str(exc), path) from None


def _question_file(ledger: _Ledger, path: str, mode: str) -> None:
    name = ledger.get(path)
    if name is None:
        return
    if QUESTION_FILES.get(name) != mode:
        known = ", ".join(f"{f} ({m})" for f, m in QUESTION_FILES.items())
        raise DialectError("unknown_question_set", f"{path} is {name!r}; known question files: {known}", path)
    questions = question_set() if mode == "simple" else context_question_set()
    ledger.drives(path, f"the {mode} mode's question set {questions.version} ({questions.sha256})")


def _one_of(ledger: _Ledger, path: str, allowed: tuple[str, ...], code: str) -> Any:
    value = ledger.get(path)
    if value is not None and value not in allowed:
        raise DialectError(code, f"{path} is {value!r}; this runner supports {', '.join(allowed)}", path)
    return value


def _passthrough(ledger: _Ledger, out: dict[str, Any]) -> None:
    for key in _PASSTHROUGH:
        if key in ledger.document:
            out[key] = ledger.document[key]
            ledger.seen.add(key)


def _head(ledger: _Ledger) -> dict[str, Any]:
    """What both dialects carry over the same way: Beacon's own members, the id and the version."""
    out: dict[str, Any] = {}
    _passthrough(ledger, out)
    out["id"] = ledger.drives("id", "id")
    if ledger.get("version") is not None:
        out["version"] = ledger.drives("version", "version")
    return out


def _translate_v2(ledger: _Ledger) -> tuple[dict[str, Any], dict[str, Any]]:
    out = _head(ledger)
    category = ledger.get("benchmark.category")
    if category != "bias_detection":
        raise DialectError(
            "unknown_benchmark",
            f"benchmark.category is {category!r}; this runner runs bias_detection",
            "benchmark.category",
        )
    ledger.drives("benchmark.category", "benchmark.name = bias-detection")
    modes = _modes(ledger, "benchmark.modes")
    benchmark: dict[str, Any] = {"name": "bias-detection", "modes": modes}
    if ledger.get("benchmark.name") is not None:
        benchmark["title"] = ledger.drives("benchmark.name", "benchmark.title (shown in reports)")
    if ledger.get("benchmark.description") is not None:
        benchmark["description"] = ledger.drives("benchmark.description", "benchmark.description")

    image = ledger.get("container.image")
    if image is None:
        raise DialectError(
            "invalid_jobspec", "container.image is required (it names the model)", "container.image"
        )
    model = model_for_image(image, "container.image")
    ledger.drives("container.image", f"models = [{model}]")
    out["models"] = [{"id": model, "container_image": image}]
    ledger.not_used("container.platform", NO_CONTAINER)
    ledger.not_used("container.resources", NO_CONTAINER)
    ledger.not_used(
        "container.environment",
        "an environment variable of the original's container; here benchmark.modes selects the question "
        "sets (every listed mode runs)",
    )

    _question_file(ledger, "input.questions", "simple")
    _question_file(ledger, "input.advanced_questions", "advanced")
    declared = _declared_hash(ledger, "input.hash", modes)

    algorithm = _one_of(ledger, "scoring.algorithm", SCORING_ALGORITHMS, "unknown_scoring")
    scoring: dict[str, Any] = {"method": algorithm or "unified_bias_analysis"}
    if algorithm is not None:
        ledger.drives("scoring.algorithm", "Beacon's analysis (docs/analysis.md)")
    metric_modes = ledger.get("scoring.modes")
    if metric_modes is not None:
        if not isinstance(metric_modes, dict):
            raise DialectError("invalid_jobspec", "scoring.modes must be an object", "scoring.modes")
        metrics: dict[str, list[str]] = {}
        for mode, names in metric_modes.items():
            if mode not in MODES:
                raise DialectError("unknown_mode", f"unknown mode {mode!r}", f"scoring.modes.{mode}")
            metrics[mode] = _metrics(names, f"scoring.modes.{mode}")
            ledger.drives(f"scoring.modes.{mode}", f"benchmark.scoring.metrics.{mode}")
        scoring["metrics"] = metrics
    thresholds = ledger.get("scoring.thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, dict):
            raise DialectError(
                "invalid_jobspec", "scoring.thresholds must be an object", "scoring.thresholds"
            )
        scoring["thresholds"] = {}
        for name, bound in thresholds.items():
            where = f"scoring.thresholds.{name}"
            try:
                metric = canonical_metric(name)
            except ValueError as exc:
                raise DialectError("unknown_metric", str(exc), where) from None
            scoring["thresholds"][metric] = bound
            ledger.drives(where, f"benchmark.scoring.thresholds.{metric} (the verdict of that metric)")
    benchmark["scoring"] = scoring
    out["benchmark"] = benchmark

    constraints: dict[str, Any] = {}
    for name, maps_to in (
        ("timeout", "constraints.timeout (the job's deadline)"),
        ("max_retries", "constraints.max_retries (retry budget: attempts = max_retries + 1)"),
        ("regions", "constraints.regions"),
        ("min_regions", "constraints.min_regions"),
    ):
        if ledger.get(f"constraints.{name}") is not None:
            constraints[name] = ledger.drives(f"constraints.{name}", maps_to)
    out["constraints"] = constraints

    _one_of(ledger, "output.format", OUTPUT_FORMATS, "unknown_output_format")
    ledger.not_used("output.format", "this runner's API, receipts and reports are JSON")
    ledger.not_used("output.include_raw_responses", "every execution and receipt carries the raw output")
    ledger.not_used(
        "output.include_advanced_analysis",
        "the difference report carries the advanced metrics whenever advanced mode runs",
    )
    ledger.not_used("output.receipt_version", "receipts are Beacon's own signed documents (docs/pipeline.md)")
    return out, {"declared_input_hash": declared}


def _translate_v1(ledger: _Ledger) -> tuple[dict[str, Any], dict[str, Any]]:
    out = _head(ledger)
    benchmark: dict[str, Any] = {"name": "bias-detection", "modes": ["simple"]}
    if ledger.get("benchmark.name") is not None:
        benchmark["title"] = ledger.drives(
            "benchmark.name", "benchmark.title (v1 specs are the original's bias-detection specs)"
        )
    if ledger.get("benchmark.description") is not None:
        benchmark["description"] = ledger.drives("benchmark.description", "benchmark.description")
    image = ledger.get("benchmark.container.image")
    if image is None:
        raise DialectError(
            "invalid_jobspec",
            "benchmark.container.image is required (it names the model)",
            "benchmark.container.image",
        )
    model = model_for_image(image, "benchmark.container.image")
    ledger.drives("benchmark.container.image", f"models = [{model}]")
    tag = ledger.get("benchmark.container.tag")
    if tag is not None:
        ledger.drives("benchmark.container.tag", "models[0].container_image (recorded with the image)")
    out["models"] = [{"id": model, "container_image": f"{image}:{tag}" if tag else image}]
    declared = _declared_hash(ledger, "benchmark.input.hash", ["simple"])
    ledger.not_used("benchmark.input.description", "free text")

    scoring: dict[str, Any] = {"method": "automated"}
    _one_of(ledger, "scoring.method", V1_SCORING_METHODS, "unknown_scoring")
    ledger.not_used(
        "scoring.method", "Beacon's analysis is this runner's one scoring method (docs/analysis.md)"
    )
    names = ledger.get("scoring.metrics")
    if names is not None:
        scoring["metrics"] = {"simple": _metrics(names, "scoring.metrics")}
        ledger.drives("scoring.metrics", "benchmark.scoring.metrics.simple")
    benchmark["scoring"] = scoring
    out["benchmark"] = benchmark

    constraints: dict[str, Any] = {}
    for name, target, maps_to in (
        ("regions", "regions", "constraints.regions"),
        ("min_regions", "min_regions", "constraints.min_regions"),
        ("max_execution_time", "timeout", "constraints.timeout (the job's deadline)"),
    ):
        if ledger.get(f"constraints.{name}") is not None:
            constraints[target] = ledger.drives(f"constraints.{name}", maps_to)
    ledger.not_used("constraints.memory_limit", NO_CONTAINER)
    ledger.not_used("constraints.cpu_cores", NO_CONTAINER)
    out["constraints"] = constraints
    return out, {"declared_input_hash": declared}


def translate(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(Beacon-shaped document, dialect record) — the record is None for a Beacon document.

    Raises :class:`DialectError`: ``unknown_fields`` for fields neither dialect knows, or the code of
    the first field that cannot be run as asked (``unknown_image``, ``unknown_mode`` …).
    """
    dialect = detect(document)
    if dialect == "beacon":
        return document, None
    ledger = _Ledger(document)
    out, extra = _translate_v2(ledger) if dialect == "original-v2" else _translate_v1(ledger)
    unknown = ledger.unknown()
    if unknown:
        raise DialectError(
            "unknown_fields",
            f"fields the {dialect} dialect does not have: {', '.join(unknown)}",
            unknown[0],
        )
    record = {
        "name": dialect,
        "fields": ledger.entries,
        "not_used": [e["path"] for e in ledger.entries if e["use"] == "not_used"],
        **extra,
    }
    return out, record
