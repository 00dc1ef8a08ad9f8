"""List the import cycles among beacon's modules, deferred (function-level) imports included.

Usage: ``python tools/import_cycles.py [--top-level-only]``. An edge A → B is any ``import B`` or
``from B import …`` in A (``from pkg import name`` counts as pkg.name when that is a module); an
import under ``if TYPE_CHECKING:`` is left out, since it never runs. Each strongly connected component
with more than one module is printed with one shortest cycle through it; the exit status is the number
of components, so a clean tree exits 0.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "beacon"


def module_name(path: Path) -> str:
    """The dotted name of a source file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: set[str], *, top_level_only: bool) -> set[str]:
    """The package modules ``name`` imports (at import time, or also deferred unless top_level_only)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def visit(node: ast.AST, nested: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement, nested)
            return
        if isinstance(node, ast.Import) and not (nested and top_level_only):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not (nested and top_level_only):
            target = resolve(node)
            for alias in node.names:  # a submodule imported by name is the edge, not its package
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
        inner = nested or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return {m for m in found if m in known and m != name}


def components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    if len(members) > 1:
                        result.append(sorted(members))
    return sorted(result)


def shortest_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One shortest cycle through the component's first module (breadth-first, inside the component)."""
    inside = set(members)
    start = members[0]
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & inside):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return members


def main(argv: list[str]) -> int:
    top_level_only = "--top-level-only" in argv
    found = modules()
    graph = {
        name: imports_of(name, path, set(found), top_level_only=top_level_only)
        for name, path in found.items()
    }
    cycles = components(graph)
    for members in cycles:
        print(f"{len(members)} modules: {', '.join(members)}")
        print("  e.g. " + " → ".join(shortest_cycle(graph, members)))
    print(f"{len(cycles)} cycle(s) among {len(found)} modules")
    return len(cycles)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
