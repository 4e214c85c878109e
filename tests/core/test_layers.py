"""The core's layers, as docs/architecture.md draws them: every module imports only its own
layer or those below it, and no runtime import cycle exists."""

from __future__ import annotations

import ast
from pathlib import Path

import cubemem

SRC = Path(cubemem.__file__).resolve().parent
LAYERS = [
    {
        "model",
        "settings",
        "errors",
        "limits",
        "manifest",
        "archive",
        "sqlite",
        "render",
        "chatter",
    },
    {
        "store",
        "embed",
        "llm",
        "chat",
        "extract",
        "summarize",
        "facts",
        "entities",
        "timewords",
        "redact",
        "access",
    },
    {
        "retrieve",
        "searchindex",
        "lexical",
        "graph",
        "graph_names",
        "index_file",
        "index_vectors",
        "index_texts",
    },
    {"ops"},
    {"scheduler"},
    {"cube"},
    {"shared"},
    {"os"},
    {
        "tools",
        "blocks",
        "expand",
        "cli",
        "bench",
        "ingest_file",
        "server",
        "remote",
    },
]


def _rank(module: str) -> int:
    top = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported cubemem module, runtime?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("cubemem."):
                out.append((name, id(node) not in typing_only))
    return out


def test_no_module_imports_a_layer_above_its_own():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if name == "cubemem":
            continue  # the package's public names re-export every layer
        for imported, _ in _imports(path):
            if imported in modules and _rank(imported) > _rank(name):
                wrong.append(f"{name} imports {imported}")
    assert not wrong, wrong


def test_no_import_cycle_not_even_through_type_only_imports():
    modules = _modules()
    graph = {
        # a module's own package is imported before it, so that edge is no cycle
        name: {
            i
            for i, _ in _imports(path)
            if i in modules and i != name and not name.startswith(f"{i}.")
        }
        for name, path in modules.items()
        if name != "cubemem"
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt.startswith("cubemem.") and nxt in graph:
                assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*trail, node, nxt])}"
                if nxt not in state:
                    visit(nxt, [*trail, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
