"""The Day-1 plan as data: phases, typed parameters, expected checks, success criteria.

A plan file (``test_plans/day1.yaml``) lists, in order, the phases of the test plan, each with the
notebook that implements it, its parameters (typed, validated before anything runs — papermill
itself only warns about unknown names), a timeout, and the checks the phase must produce. Success
criteria name the checks that decide them (``phase/check``). A plan may ``extend`` another and keep
a subset of its phases (the CI smoke plan does).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

PLAN_SCHEMA = "beacon.test-plan/v1"

ParameterType = Literal["str", "int", "float", "bool", "list[str]", "list[int]", "dict", "list[dict]"]

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "str": TypeAdapter(str),
    "int": TypeAdapter(int),
    "float": TypeAdapter(float),
    "bool": TypeAdapter(bool),
    "list[str]": TypeAdapter(list[str]),
    "list[int]": TypeAdapter(list[int]),
    "dict": TypeAdapter(dict[str, Any]),
    "list[dict]": TypeAdapter(list[dict[str, Any]]),
}

_ID = r"^[a-z0-9][a-z0-9+._-]*$"


class PlanError(ValueError):
    """The plan (or a parameter given to it) is invalid; the message says where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(_Model):
    """A notebook parameter: its type, default and meaning."""

    type: ParameterType
    default: Any = None
    description: str = ""
    required: bool = False
    """Must be given a non-empty value before the phase runs."""
    choices: list[Any] | None = None
    injected: bool = False
    """Set by the harness (runner URL, results path …), not by the user."""
    overridden: bool = False
    """The default was changed by a plan that ``extends`` this one (it may differ from the notebook's)."""

    def coerce(self, name: str, value: Any) -> Any:
        """``value`` validated against the declared type (strict: "yes" is not a bool)."""
        adapter = _ADAPTERS[self.type]
        try:
            result = adapter.validate_python(value, strict=self.type not in ("float",))
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            raise PlanError(f"parameter {name!r}: expected {self.type}, got {value!r} ({message})") from None
        if self.type == "float" and isinstance(value, bool):
            raise PlanError(f"parameter {name!r}: expected float, got {value!r}")
        if self.choices is not None and result not in self.choices:
            raise PlanError(f"parameter {name!r}: {result!r} is not one of {self.choices}")
        return result


class CheckSpec(_Model):
    """A check a phase must produce, and the items of the written plan it carries out."""

    id: str = Field(pattern=_ID)
    title: str
    plan: list[str] = Field(default_factory=list)
    """The written plan's own words for what this check verifies."""

    @field_validator("plan", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PhaseSpec(_Model):
    id: str = Field(pattern=_ID)
    title: str
    section: str
    """The section(s) of the written plan this phase implements."""
    notebook: Path
    timeout_s: float = Field(gt=0, le=3600)
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    checks: list[CheckSpec] = Field(min_length=1)
    description: str = ""

    @model_validator(mode="after")
    def _unique_checks(self) -> PhaseSpec:
        seen: set[str] = set()
        for check in self.checks:
            if check.id in seen:
                raise ValueError(f"check {check.id!r} listed twice")
            seen.add(check.id)
        return self

    def check(self, check_id: str) -> CheckSpec | None:
        return next((c for c in self.checks if c.id == check_id), None)


class CriterionSpec(_Model):
    """A success criterion of the written plan and the checks that decide it (all must pass)."""

    id: str = Field(pattern=_ID)
    title: str
    evidence: list[str] = Field(min_length=1)
    """``phase/check`` references."""
    needs: list[str] = Field(default_factory=list)
    """Components that must be the real ones for a pass (beacon.harness.components.COMPONENTS)."""
    note: str = ""

    @field_validator("needs")
    @classmethod
    def _components(cls, value: list[str]) -> list[str]:
        from beacon.harness.components import COMPONENTS

        unknown = [name for name in value if name not in COMPONENTS]
        if unknown:
            raise ValueError(f"unknown components {unknown} (known: {sorted(COMPONENTS)})")
        return value

    @field_validator("evidence")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            if ref.count("/") != 1 or not all(ref.split("/")):
                raise ValueError(f"evidence {ref!r} is not 'phase/check'")
        return value


class ManualItem(_Model):
    """An item of the written plan no program can carry out here, with the reason and what stands in."""

    item: str
    section: str
    reason: str
    covered_by: list[str] = Field(default_factory=list)


class Plan(_Model):
    schema_: str = Field(alias="schema")
    name: str = Field(pattern=_ID)
    title: str
    source: str = ""
    description: str = ""
    target_duration_s: float | None = None
    kernel: str = "beacon"
    inference_target_s: float = 2.0
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    """Parameters every phase's notebook takes."""
    runner_settings: dict[str, str] = Field(default_factory=dict)
    """Settings (environment variables) of the embedded runner a run starts, e.g. ``CORS_ORIGINS``.
    A live runner (``--runner``) is configured by its operator; these do not reach it."""
    phases: list[PhaseSpec] = Field(min_length=1)
    success_criteria: list[CriterionSpec] = Field(default_factory=list)
    manual: list[ManualItem] = Field(default_factory=list)
    path: Path | None = None
    """Where the plan was read from (set by :func:`load_plan`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: str) -> str:
        if value != PLAN_SCHEMA:
            raise ValueError(f"expected {PLAN_SCHEMA!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        ids = [phase.id for phase in self.phases]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"phase ids listed twice: {', '.join(duplicates)}")
        for phase in self.phases:
            shared = set(phase.parameters) & set(self.parameters)
            if shared:
                raise ValueError(f"phase {phase.id}: parameters {sorted(shared)} are already plan-wide")
        criteria = [c.id for c in self.success_criteria]
        if len(set(criteria)) != len(criteria):
            raise ValueError("success criterion ids must be unique")
        for criterion in self.success_criteria:
            for ref in criterion.evidence:
                phase_id, check_id = ref.split("/")
                source = self.phase(phase_id)
                if source is None:
                    raise ValueError(f"criterion {criterion.id}: unknown phase {phase_id!r} in {ref!r}")
                if source.check(check_id) is None:
                    raise ValueError(
                        f"criterion {criterion.id}: phase {phase_id} declares no check {check_id!r}"
                    )
        return self

    # --- lookups ---------------------------------------------------------------------------------
    def phase(self, phase_id: str) -> PhaseSpec | None:
        return next((p for p in self.phases if p.id == phase_id), None)

    def parameter_specs(self, phase: PhaseSpec) -> dict[str, ParameterSpec]:
        return {**self.parameters, **phase.parameters}

    def root(self) -> Path:
        """The directory notebook paths are relative to (the repository root for test_plans/*.yaml)."""
        if self.path is None:
            return Path.cwd()
        return self.path.resolve().parent.parent

    def notebook_path(self, phase: PhaseSpec) -> Path:
        return phase.notebook if phase.notebook.is_absolute() else self.root() / phase.notebook

    def select(self, phase_ids: list[str] | None) -> list[PhaseSpec]:
        """The phases to run, in plan order; PlanError naming any unknown id."""
        if not phase_ids:
            return list(self.phases)
        unknown = [p for p in phase_ids if self.phase(p) is None]
        if unknown:
            raise PlanError(
                f"unknown phase(s) {', '.join(unknown)}; this plan has: {', '.join(p.id for p in self.phases)}"
            )
        wanted = set(phase_ids)
        return [p for p in self.phases if p.id in wanted]

    # --- parameters ------------------------------------------------------------------------------
    def resolve_parameters(self, phase: PhaseSpec, values: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``values``, each validated against its declared type.

        Unknown names are an error (papermill would only warn and run with the default).
        """
        specs = self.parameter_specs(phase)
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise PlanError(
                f"phase {phase.id}: unknown parameter(s) {', '.join(unknown)}; it takes: {', '.join(sorted(specs))}"
            )
        resolved: dict[str, Any] = {}
        for name, spec in specs.items():
            value = values.get(name, spec.default)
            if value is None and spec.type != "str":
                raise PlanError(f"phase {phase.id}: parameter {name!r} has no value")
            value = spec.coerce(name, "" if value is None else value)
            if spec.required and value in ("", [], {}):
                raise PlanError(f"phase {phase.id}: parameter {name!r} is required")
            resolved[name] = value
        return resolved

    def validate_notebooks(self, phases: list[PhaseSpec] | None = None) -> list[str]:
        """Problems between the plan and its notebooks (missing files, undeclared parameters …)."""
        import papermill

        problems: list[str] = []
        for phase in self.phases if phases is None else phases:
            path = self.notebook_path(phase)
            if not path.is_file():
                problems.append(f"phase {phase.id}: notebook {phase.notebook} does not exist")
                continue
            try:
                inferred = papermill.inspect_notebook(str(path))
            except Exception as exc:
                problems.append(f"phase {phase.id}: cannot inspect {phase.notebook}: {exc}")
                continue
            if not _has_parameters_cell(path):
                problems.append(f"phase {phase.id}: {phase.notebook} has no cell tagged 'parameters'")
                continue
            declared = self.parameter_specs(phase)
            for name in sorted(set(declared) - set(inferred)):
                problems.append(
                    f"phase {phase.id}: parameter {name!r} is not in the notebook's parameters cell"
                )
            for name in sorted(set(inferred) - set(declared)):
                problems.append(f"phase {phase.id}: notebook parameter {name!r} is not declared in the plan")
            for name, spec in declared.items():
                if spec.default is not None:
                    try:
                        spec.coerce(name, spec.default)
                    except PlanError as exc:
                        problems.append(f"phase {phase.id}: default of {exc}")
                if name in inferred and not (spec.injected or spec.overridden):
                    problem = _default_mismatch(name, spec, inferred[name].get("default"))
                    if problem:
                        problems.append(f"phase {phase.id}: {problem}")
        return problems


def _default_mismatch(name: str, spec: ParameterSpec, notebook_default: Any) -> str | None:
    """Why the notebook's default differs from the plan's, or None.

    An empty notebook default (``{}``, ``[]``) means "the plan's default" (the notebook reads it
    with :func:`plan_default`), so big tables live in one place only.
    """
    if not isinstance(notebook_default, str):
        return None
    try:
        value = ast.literal_eval(notebook_default)
    except (ValueError, SyntaxError):
        return None  # an expression: nothing to compare
    if value in ({}, []) and spec.default not in (None, {}, []):
        return None
    if value != spec.default:
        return f"parameter {name!r} defaults to {value!r} in the notebook but {spec.default!r} in the plan"
    return None


SHIPPED_DIR = "_shipped"
"""Inside the installed package: ``beacon/_shipped/{test_plans,notebooks}`` (pyproject's force-include)."""


def shipped_root() -> Path:
    """The folder holding this installation's ``test_plans/`` and ``notebooks/``.

    The one place that finds them: inside the installed package (a wheel carries them under
    ``beacon/_shipped/``), or the checkout an editable install runs from.
    """
    import beacon

    package = Path(beacon.__file__).resolve().parent
    for root in (package / SHIPPED_DIR, package.parent):
        if (root / "test_plans" / "day1.yaml").is_file() and (root / "notebooks").is_dir():
            return root
    raise PlanError(
        f"this installation of beacon ({package}) carries no test_plans/ and notebooks/: "
        "reinstall it from a wheel or a checkout"
    )


def resolve_plan(plan: str | Path | None = None) -> Path:
    """The plan file to run: ``None`` is the shipped Day-1 plan; a file that exists is itself; a
    shipped plan's name (``smoke``, ``smoke.yaml``, ``test_plans/smoke.yaml``) is the shipped file,
    from any folder. Anything else comes back unchanged (loading it then says it cannot be read)."""
    if plan is None:
        return shipped_root() / "test_plans" / "day1.yaml"
    path = Path(plan)
    if path.is_file() or path.is_absolute() or str(path.parent) not in (".", "test_plans"):
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    try:
        candidate = shipped_root() / "test_plans" / name
    except PlanError:
        return path
    return candidate if candidate.is_file() else path


def find_plan(name: str = "day1.yaml", start: Path | None = None) -> Path:
    """``test_plans/<name>`` in the current folder or one of its parents (a notebook opened in
    notebooks/ of a checkout), else the installation's own (see :func:`shipped_root`)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "test_plans" / name
        if candidate.is_file():
            return candidate
    shipped = resolve_plan(name)
    if shipped.is_file():
        return shipped
    raise PlanError(f"test_plans/{name} not found from {here}, nor in this installation")


def plan_default(phase_id: str, name: str, plan_path: str | Path | None = None) -> Any:
    """The plan's default for a phase parameter (a notebook fills its empty defaults with it)."""
    plan = load_plan(plan_path or find_plan())
    phase = plan.phase(phase_id)
    if phase is None:
        raise PlanError(f"the plan has no phase {phase_id!r}")
    spec = plan.parameter_specs(phase).get(name)
    if spec is None:
        raise PlanError(f"phase {phase_id} has no parameter {name!r}")
    return spec.default


def _has_parameters_cell(path: Path) -> bool:
    import nbformat

    notebook = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    return any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in notebook.cells)


def parse_cli_value(text: str) -> Any:
    """A ``-p name=value`` value: YAML scalar/flow syntax (``3``, ``true``, ``[US, EU]``), else the text."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def split_overrides(
    overrides: Mapping[str, Any], plan: Plan
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split ``name=value`` (plan-wide) from ``phase.name=value`` (one phase) overrides."""
    common: dict[str, Any] = {}
    per_phase: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        phase_id, dot, name = key.rpartition(".")
        if dot and plan.phase(phase_id) is not None:
            per_phase.setdefault(phase_id, {})[name] = value
        else:
            common[key] = value
    return common, per_phase


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """The document ``base`` with ``overlay`` applied: phases kept by ``phases_only``, defaults overridden."""
    merged = {k: v for k, v in base.items() if k not in ("phases_only", "parameter_defaults")}
    merged.update(
        {k: v for k, v in overlay.items() if k not in ("extends", "phases_only", "parameter_defaults")}
    )
    phases = base.get("phases", [])
    only = overlay.get("phases_only")
    if only is not None:
        known = {p.get("id") for p in phases}
        missing = [p for p in only if p not in known]
        if missing:
            raise PlanError(f"phases_only names unknown phase(s): {', '.join(missing)}")
        phases = [p for p in phases if p.get("id") in set(only)]
        kept = {p["id"] for p in phases}
        merged["success_criteria"] = [
            c
            for c in overlay.get("success_criteria", base.get("success_criteria", []))
            if all(ref.split("/")[0] in kept for ref in c.get("evidence", []))
        ]
        merged["manual"] = overlay.get("manual", [])
    defaults: dict[str, Any] = overlay.get("parameter_defaults") or {}
    common = dict(merged.get("parameters", base.get("parameters", {})))
    new_phases = []
    for phase in phases:
        params = dict(phase.get("parameters", {}))
        for key, value in defaults.items():
            phase_id, dot, name = key.rpartition(".")
            if dot and phase_id == phase["id"]:
                if name not in params:
                    raise PlanError(f"parameter_defaults: phase {phase_id} has no parameter {name!r}")
                params[name] = {**params[name], "default": value, "overridden": True}
        new_phases.append({**phase, "parameters": params})
    for key, value in defaults.items():
        if "." not in key or key.rpartition(".")[0] not in {p["id"] for p in phases}:
            if key not in common:
                raise PlanError(f"parameter_defaults: no plan-wide parameter {key!r}")
            common[key] = {**common[key], "default": value, "overridden": True}
    merged["parameters"] = common
    merged["phases"] = new_phases
    return merged


def _read_document(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        raise PlanError(f"{path}: 'extends' loops back to itself")
    try:
        loaded: Any = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read plan {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise PlanError(f"{path}: a plan is a YAML mapping")
    document: dict[str, Any] = {str(k): v for k, v in loaded.items()}
    parent = document.get("extends")
    if parent:
        base = _read_document(resolved.parent / str(parent), (*seen, resolved))
        document = _merge(base, document)
    return document


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (PlanError with every problem found, never a traceback)."""
    file = Path(path)
    document = _read_document(file)
    try:
        plan = Plan.model_validate({**document, "path": file})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "plan"
            lines.append(f"  {where}: {error['msg'].removeprefix('Value error, ')}")
        raise PlanError(f"{file}: invalid plan\n" + "\n".join(lines)) from None
    return plan


def slug(text: str) -> str:
    """A filesystem-safe form of a phase id (``t+15`` → ``t+15``; spaces and slashes replaced)."""
    return re.sub(r"[^A-Za-z0-9+._-]", "_", text)
