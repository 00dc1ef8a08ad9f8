"""The plan as data: loading, validation against the notebooks, typed parameters, extends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from beacon.harness.plan import (
    PlanError,
    find_plan,
    load_plan,
    parse_cli_value,
    resolve_plan,
    shipped_root,
    split_overrides,
)

ROOT = Path(__file__).resolve().parents[2]
DAY1 = ROOT / "test_plans" / "day1.yaml"
SMOKE = ROOT / "test_plans" / "smoke.yaml"


def write_plan(tmp_path: Path, document: dict, name: str = "plan.yaml") -> Path:
    folder = tmp_path / "test_plans"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def minimal(**changes: object) -> dict:
    document: dict = {
        "schema": "beacon.test-plan/v1",
        "name": "mini",
        "title": "Mini",
        "parameters": {"results_path": {"type": "str", "default": "", "injected": True}},
        "phases": [
            {
                "id": "one",
                "title": "One",
                "section": "S",
                "notebook": "notebooks/one.ipynb",
                "timeout_s": 10,
                "parameters": {
                    "count": {"type": "int", "default": 2},
                    "names": {"type": "list[str]", "default": ["a"]},
                },
                "checks": [{"id": "ok", "title": "ok", "plan": "the plan's words"}],
            }
        ],
        "success_criteria": [{"id": "c", "title": "C", "evidence": ["one/ok"]}],
    }
    document.update(changes)
    return document


def test_the_day1_plan_is_valid_and_matches_its_notebooks() -> None:
    plan = load_plan(DAY1)
    assert [p.id for p in plan.phases] == [
        "t-60",
        "t-30",
        "t-15",
        "cors",
        "t-0",
        "t+15",
        "t+20",
        "t+45",
        "emergency",
        "portal",
        "t+60",
    ]
    assert plan.validate_notebooks() == []
    assert len(plan.success_criteria) == 8  # the written plan's eight Success Criteria
    for phase in plan.phases:
        for check in phase.checks:
            assert check.plan, f"{phase.id}/{check.id} quotes no item of the written plan"
        plan.resolve_parameters(phase, {})  # every default is valid for its type


def test_the_smoke_plan_extends_day1_with_a_subset() -> None:
    plan = load_plan(SMOKE)
    day1 = load_plan(DAY1)
    assert {p.id for p in plan.phases} < {p.id for p in day1.phases}
    assert plan.validate_notebooks() == []
    for criterion in plan.success_criteria:  # only criteria its phases can decide are kept
        assert all(plan.phase(ref.split("/")[0]) for ref in criterion.evidence)


def test_parameters_are_typed_and_unknown_names_refused(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, minimal()))
    phase = plan.phases[0]
    assert plan.resolve_parameters(phase, {"count": 5}) == {"results_path": "", "count": 5, "names": ["a"]}
    with pytest.raises(PlanError, match=r"count.*expected int"):
        plan.resolve_parameters(phase, {"count": "5"})
    with pytest.raises(PlanError, match=r"names.*expected list"):
        plan.resolve_parameters(phase, {"names": "a"})
    with pytest.raises(PlanError, match=r"unknown parameter.*colour"):
        plan.resolve_parameters(phase, {"colour": "red"})
    with pytest.raises(PlanError, match=r"count.*expected int"):
        plan.resolve_parameters(phase, {"count": True})  # a bool is not an int here


def test_required_and_choices(tmp_path: Path) -> None:
    document = minimal()
    document["phases"][0]["parameters"]["mode"] = {
        "type": "str",
        "default": "",
        "required": True,
        "choices": ["", "a", "b"],
    }
    plan = load_plan(write_plan(tmp_path, document))
    with pytest.raises(PlanError, match="required"):
        plan.resolve_parameters(plan.phases[0], {})
    with pytest.raises(PlanError, match="not one of"):
        plan.resolve_parameters(plan.phases[0], {"mode": "c"})
    assert plan.resolve_parameters(plan.phases[0], {"mode": "b"})["mode"] == "b"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"success_criteria": [{"id": "c", "title": "C", "evidence": ["one/nope"]}]},
            "declares no check 'nope'",
        ),
        ({"success_criteria": [{"id": "c", "title": "C", "evidence": ["two/ok"]}]}, "unknown phase 'two'"),
        ({"success_criteria": [{"id": "c", "title": "C", "evidence": ["one-ok"]}]}, "not 'phase/check'"),
        ({"schema": "something/v2"}, "beacon.test-plan/v1"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_invalid_plans_are_refused_with_the_place(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        load_plan(write_plan(tmp_path, minimal(**change)))


def test_duplicate_phase_ids_are_refused(tmp_path: Path) -> None:
    document = minimal()
    document["phases"].append(dict(document["phases"][0]))
    with pytest.raises(PlanError, match="phase ids listed twice: one"):
        load_plan(write_plan(tmp_path, document))


def test_notebook_validation_finds_missing_and_undeclared_parameters(tmp_path: Path) -> None:
    import nbformat

    (tmp_path / "notebooks").mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "beacon", "display_name": "Beacon", "language": "python"}
    cell = nbformat.v4.new_code_cell("results_path = ''\ncount = 2\nextra = 1\n")
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell]
    nbformat.write(notebook, str(tmp_path / "notebooks" / "one.ipynb"))
    plan = load_plan(write_plan(tmp_path, minimal()))
    problems = plan.validate_notebooks()
    assert "phase one: parameter 'names' is not in the notebook's parameters cell" in problems
    assert "phase one: notebook parameter 'extra' is not declared in the plan" in problems


def test_extends_keeps_a_subset_and_overrides_defaults(tmp_path: Path) -> None:
    base = minimal()
    base["phases"].append({**base["phases"][0], "id": "two", "checks": [{"id": "ok", "title": "ok"}]})
    base["success_criteria"].append({"id": "d", "title": "D", "evidence": ["two/ok"]})
    write_plan(tmp_path, base, "base.yaml")
    child = write_plan(
        tmp_path,
        {
            "extends": "base.yaml",
            "name": "child",
            "phases_only": ["two"],
            "parameter_defaults": {"two.count": 7},
        },
        "child.yaml",
    )
    plan = load_plan(child)
    assert [p.id for p in plan.phases] == ["two"]
    assert [c.id for c in plan.success_criteria] == ["d"]
    assert plan.resolve_parameters(plan.phases[0], {})["count"] == 7
    bad = write_plan(tmp_path, {"extends": "base.yaml", "phases_only": ["zzz"]}, "bad.yaml")
    with pytest.raises(PlanError, match="unknown phase"):
        load_plan(bad)


def test_cli_values_and_overrides() -> None:
    plan = load_plan(DAY1)
    assert parse_cli_value("3") == 3
    assert parse_cli_value("[US, EU]") == ["US", "EU"]
    assert parse_cli_value("true") is True
    assert parse_cli_value("") == ""
    common, per_phase = split_overrides({"live": True, "t+15.jobs_count": 2}, plan)
    assert common == {"live": True}
    assert per_phase == {"t+15": {"jobs_count": 2}}


def test_notebook_defaults_must_agree_with_the_plan(tmp_path: Path) -> None:
    import nbformat

    (tmp_path / "notebooks").mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "beacon", "display_name": "Beacon", "language": "python"}
    cell = nbformat.v4.new_code_cell("results_path = ''\ncount = 3\nnames = []\n")
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell]
    nbformat.write(notebook, str(tmp_path / "notebooks" / "one.ipynb"))
    plan = load_plan(write_plan(tmp_path, minimal()))
    # count differs; names = [] means "the plan's default" and is accepted
    assert plan.validate_notebooks() == [
        "phase one: parameter 'count' defaults to 3 in the notebook but 2 in the plan"
    ]


def test_plan_default_is_found_from_a_notebook_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beacon.harness.plan import plan_default

    monkeypatch.chdir(ROOT / "notebooks")
    assert plan_default("t-15", "expected")["unsigned"] == {"status": 400, "code": "signature_missing"}
    monkeypatch.chdir(tmp_path)  # outside any checkout: the plan shipped with the package
    assert plan_default("t-15", "expected")["unsigned"] == {"status": 400, "code": "signature_missing"}
    with pytest.raises(PlanError, match="not found"):
        find_plan("no-such-plan.yaml")


def test_the_embedded_runner_lists_the_portal_phases_origin_in_its_cors_allowlist() -> None:
    """The portal phase serves the portal from its own origin: the plan's runner settings must allow it."""
    plan = load_plan(DAY1)
    phase = plan.phase("portal")
    assert phase is not None
    origin = plan.parameter_specs(phase)["portal_origin"].default
    allowed = plan.runner_settings["CORS_ORIGINS"].split(",")
    assert origin in allowed and "https://projectbeacon.netlify.app" in allowed
    assert load_plan(SMOKE).runner_settings == plan.runner_settings  # a plan that extends day1 inherits them


def test_the_shipped_plans_and_notebooks_are_found_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = shipped_root()
    assert (root / "test_plans" / "day1.yaml").is_file() and (root / "notebooks").is_dir()
    day1 = load_plan(resolve_plan(None))
    assert day1.name == "day1" and day1.validate_notebooks() == []
    assert all(day1.notebook_path(p).is_file() for p in day1.phases)
    for name in ("smoke", "smoke.yaml", "test_plans/smoke.yaml"):
        assert resolve_plan(name) == root / "test_plans" / "smoke.yaml"
    (tmp_path / "smoke.yaml").write_text("not: a plan\n")
    assert resolve_plan("smoke.yaml") == Path("smoke.yaml")  # a file that exists here is itself
    assert resolve_plan("test_plans/nope.yaml") == Path("test_plans/nope.yaml")
    with pytest.raises(PlanError, match="cannot read plan"):
        load_plan(resolve_plan("test_plans/nope.yaml"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_wheel_installed_elsewhere_carries_the_plans_and_notebooks(tmp_path: Path) -> None:
    """A real, non-editable wheel in a fresh virtualenv: the plan and notebooks come from inside it."""
    import subprocess
    import sys
    import sysconfig
    import venv

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]  # pip fetches hatchling, as `make setup` does
    (wheel,) = (tmp_path / "dist").glob("beacon-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", site, str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    # The dependencies come from this environment, after the wheel (which must win over the checkout).
    (Path(site) / "zz-deps.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import beacon, json; from beacon.harness.plan import shipped_root, load_plan, resolve_plan;"
        "plan = load_plan(resolve_plan(None));"
        "print(json.dumps({'package': beacon.__file__, 'root': str(shipped_root()),"
        " 'phases': len(plan.phases), 'problems': plan.validate_notebooks()}))"
    )
    found = subprocess.run(
        [str(python), "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=120
    )
    assert found.returncode == 0, found.stderr[-2000:]
    facts = json.loads(found.stdout)
    assert facts["package"].startswith(site) and facts["root"] == str(Path(site) / "beacon" / "_shipped")
    assert facts["phases"] >= 9 and facts["problems"] == []
    refused = subprocess.run(
        [str(python), "-c", "from beacon.cli import main; main()", "day1", "--phases", "nope"],
        cwd=elsewhere, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "unknown phase(s) nope" in " ".join(refused.stderr.split())
