"""The documentation: the site builds with --strict, and every Python snippet in README.md and
docs/*.md runs as written (blocks of one file in order, sharing their names, in a fresh
folder), with fake models where a real LLM would be: ``model`` is LangChain's fake chat model
(``llm`` LlamaIndex's mock LLM), and on activation.md and parametric.md ``model``/``tokenizer``
are a tiny causal LM built from a config. A snippet that drifts from the code fails here."""

from __future__ import annotations

import ast
import asyncio
import inspect
import itertools
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from mktestdocs import grab_code_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    doc
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    if grab_code_blocks(doc.read_text(encoding="utf-8"), lang="python")
]


def test_mkdocs_builds_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "concepts" / "index.html").is_file()


def _chat_model() -> Any:
    """LangChain's ``GenericFakeChatModel`` answering "OK." forever, able to bind tools."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    class FakeToolModel(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):  # type: ignore[no-untyped-def]
            return self

    return FakeToolModel(messages=itertools.repeat(AIMessage(content="OK.")))


def _llm() -> Any:
    from llama_index.core.llms import MockFunctionCallingLLM

    return MockFunctionCallingLLM(max_tokens=16)


def _tiny_lm() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests" / "activation"))
    from tiny_lm import make_model, make_tokenizer

    tokenizer = make_tokenizer()
    return {"model": make_model(tokenizer), "tokenizer": tokenizer}


def _globals(doc: Path) -> dict[str, Any]:
    """A fresh module for the file's snippets (registered, as dataclasses expect)."""
    module = types.ModuleType(f"doc_{doc.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module
    names: dict[str, Any] = module.__dict__
    if doc.name in ("activation.md", "parametric.md"):
        names.update(_tiny_lm())
    else:
        names["model"] = _chat_model()
    names["llm"] = _llm()
    return names


def _run_block(source: str, names: dict[str, Any], where: str) -> None:
    code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, names)  # the docs' own snippets
    if inspect.iscoroutine(result):
        asyncio.run(result)


def _close_cubes(names: dict[str, Any]) -> None:
    from cubemem import MemCube, MemoryOS

    for value in names.values():
        if isinstance(value, MemCube | MemoryOS):
            value.close()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_snippet_runs(doc, tmp_path, monkeypatch, embedder):
    blocks = grab_code_blocks(doc.read_text(encoding="utf-8"), lang="python")
    monkeypatch.chdir(tmp_path)
    names = _globals(doc)
    try:
        for i, block in enumerate(blocks, start=1):
            _run_block(block, names, f"{doc.name}, snippet {i}")
        # and again: a second run of the same program (the cube exists now) works too
        if doc.name in ("README.md", "quickstart.md"):
            again = _globals(doc)
            _close_cubes(names)
            names = again
            for i, block in enumerate(blocks, start=1):
                _run_block(block, names, f"{doc.name}, snippet {i} (second run)")
    finally:
        _close_cubes(names)
