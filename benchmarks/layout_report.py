"""The shape of the code, as issue 25 measures it: modules over 400 lines, import cycles (type-only
imports included), imports of another module's private names, and the public synchronous names
of ``MemCube``. Prints JSON; exits 1 when a target is missed.

    uv run python benchmarks/layout_report.py
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "cubemem": ROOT / "core/src/cubemem",
    "cubemem_langchain": ROOT / "integrations/langchain/src/cubemem_langchain",
    "cubemem_llamaindex": ROOT / "integrations/llamaindex/src/cubemem_llamaindex",
    "cubemem_activation": ROOT / "packages/activation/src/cubemem_activation",
}
MAX_LINES = 400
MAX_NAMES = 30


def modules(package: str, folder: Path) -> dict[str, Path]:
    found = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: set[str]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import of a known module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom) and node.module in known:
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{node.module}.{n}" in known]
            out += [(f"{node.module}.{n}", []) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest:
                out.append((node.module, rest))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def report() -> dict[str, object]:
    sys.setrecursionlimit(10_000)
    long_modules, all_cycles, private = [], [], []
    total = 0
    for package, folder in SOURCES.items():
        found = modules(package, folder)
        known = set(found)
        graph: dict[str, set[str]] = {}
        for name, path in found.items():
            lines = len(path.read_text(encoding="utf-8").splitlines())
            total += lines
            if lines > MAX_LINES:
                long_modules.append(f"{path.relative_to(ROOT)}: {lines}")
            graph[name] = set()
            for imported, names in imports(path, known | {m for m in known}):
                if imported != name and not name.startswith(f"{imported}."):
                    graph[name].add(imported)
                taken = [n for n in names if n.startswith("_") and n != "__version__"]
                if taken:
                    private.append(f"{name} takes {', '.join(taken)} from {imported}")
        all_cycles += cycles(graph)
    from cubemem import MemCube

    names = sorted(
        n
        for n, member in inspect.getmembers(MemCube)
        if not n.startswith("_") and not (callable(member) and inspect.iscoroutinefunction(member))
    )
    return {
        "lines": total,
        "modules_over_400": long_modules,
        "import_cycles": all_cycles,
        "private_imports": private,
        "memcube_public_sync_names": len(names),
        "names": names,
    }


def main() -> int:
    result = report()
    print(json.dumps(result, indent=2))
    missed = (
        result["modules_over_400"]
        or result["import_cycles"]
        or result["private_imports"]
        or int(result["memcube_public_sync_names"]) > MAX_NAMES  # type: ignore[call-overload]
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
