"""The composition root: what open_runtime builds, in what order it closes it, and the import graph."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import beacon
from beacon import boot
from beacon.boot import JOB_FINALIZERS, open_runtime
from beacon.queue import InProcessQueue
from beacon.transparency import ContentStore, TransparencyLog

PACKAGE = Path(beacon.__file__).parent


async def test_a_runtime_has_every_service_and_the_finalizers_in_order(
    make_settings: Callable[..., Any],
) -> None:
    async with open_runtime(make_settings(), publish_checkpoints=False) as runtime:
        assert isinstance(runtime.queue, InProcessQueue)
        assert isinstance(runtime.tlog, TransparencyLog) and isinstance(runtime.content, ContentStore)
        assert (await runtime.admin_config.current()).version == 0
        assert [name for name, _ in runtime.job_finalizers] == ["diff-report", "bundle"]
        assert runtime.job_finalizers == JOB_FINALIZERS
        assert set(runtime.health_checks) == {"transparency_log", "content_store", "queue", "workers"}
        states = {name: (await check())["status"] for name, check in runtime.health_checks.items()}
        assert states == dict.fromkeys(runtime.health_checks, "up")


async def test_services_close_in_reverse_order_even_when_the_body_fails(
    make_settings: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def recording(name: str, close: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(self: Any) -> None:
            closed.append(name)
            await close(self)

        return wrapper

    monkeypatch.setattr(boot.Database, "close", recording("db", boot.Database.close))
    monkeypatch.setattr(TransparencyLog, "aclose", recording("tlog", TransparencyLog.aclose))
    monkeypatch.setattr(ContentStore, "aclose", recording("content", ContentStore.aclose))
    monkeypatch.setattr(InProcessQueue, "aclose", recording("queue", InProcessQueue.aclose))
    with pytest.raises(RuntimeError, match="the body failed"):
        async with open_runtime(make_settings()):
            raise RuntimeError("the body failed")
    assert closed == ["queue", "content", "tlog", "db"]


def _imports(path: Path, module: str) -> set[str]:
    """Every beacon module ``path`` imports: at module level, inside functions and for type checking."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "beacon" or name.startswith("beacon.")}


def test_no_import_cycle_runs_through_the_runtime() -> None:
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {resolved for name in _imports(path, module) if (resolved := resolve(name))}
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        parents = {".".join(t.split(".")[:i]) for t in targets for i in range(1, t.count(".") + 1)}
        graph[module] = {t for t in targets | parents if t in modules and t != module}

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for target in graph[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    for module in ("beacon.runtime", "beacon.boot"):
        back = sorted(m for m in reachable(module) if module in reachable(m) or m == module)
        assert back == [], f"{module} is in an import cycle with {back}"
