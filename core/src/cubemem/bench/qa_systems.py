"""cubemem as the answer-level harness's ``MemorySystem``, and the chat models the harness
names on the command line.

A conversation gets its own cube in the run's work folder (kept, so a resumed run reuses a
finished ingestion: a file ``ingested`` marks one). Modes: ``raw`` stores every turn;
``both`` also extracts facts from each session with the chat model (``LLMExtractor``);
``extracted`` does the same and answers from the facts alone (turns are left out of the
results, searching deeper to fill ``k``).
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from cubemem.bench.qa_data import Conversation, Session
from cubemem.cube import MemCube
from cubemem.embed import Embedder
from cubemem.errors import InvalidInputError
from cubemem.llm import ChatClient, OpenAIChat, TransformersChat

MARK = "ingested"


def chat(model: str, base_url: str | None = None, *, max_tokens: int = 256) -> ChatClient:
    """``transformers:PATH`` (a local causal LM with a chat template, run in this process) or
    a model name on an OpenAI-compatible endpoint (``base_url``, else ``OPENAI_BASE_URL``)."""
    if not isinstance(model, str) or not model:
        raise InvalidInputError(f"a model must be a non-empty name, got {model!r}")
    if model.startswith("transformers:"):
        return TransformersChat.from_pretrained(
            model.removeprefix("transformers:"), max_new_tokens=max_tokens
        )
    return OpenAIChat(model, base_url=base_url, max_tokens=max_tokens)


class CubememSystem:
    name = "cubemem"

    def __init__(self, embedder: Embedder, mode: str = "raw", llm: ChatClient | None = None):
        if mode not in ("raw", "extracted", "both"):
            raise InvalidInputError(f"mode must be raw, extracted or both, got {mode!r}")
        if mode != "raw" and llm is None:
            raise InvalidInputError(f"mode {mode!r} extracts facts: it needs a chat model")
        self.embedder = embedder
        self.mode = mode
        self.llm = llm
        self.cube: MemCube | None = None
        self.path: Path | None = None

    def open(self, conversation: Conversation, workdir: Path) -> bool:
        self.path = workdir / re.sub(r"[^A-Za-z0-9_.-]", "_", conversation.id)
        reuse = (self.path / MARK).exists()
        if reuse:
            self.cube = MemCube.open(self.path, embedder=self.embedder)
        else:
            shutil.rmtree(self.path, ignore_errors=True)  # an ingestion cut short
            self.cube = MemCube.create(self.path, embedder=self.embedder)
        if self.mode != "raw":
            from cubemem.extract import LLMExtractor

            assert self.llm is not None
            self.cube.maintenance.extractor = LLMExtractor(self.llm)
        return reuse

    def _cube(self) -> MemCube:
        if self.cube is None:
            raise InvalidInputError("open a conversation first")
        return self.cube

    def add(self, session: Session) -> list[str]:
        cube = self._cube()
        messages = [{"speaker": t.speaker, "text": t.text, "id": t.id} for t in session.turns]
        if not messages:
            return []
        cube.add_messages(messages, session=session.id, timestamp=session.when)
        stored = list(cube.iter(filters={"session": session.id}, page_size=500))
        if self.mode == "extracted":
            stored = [m for m in stored if m.provenance.source != "message"]
        return [m.content for m in stored]

    def ingested(self) -> None:
        assert self.path is not None
        (self.path / MARK).write_text("", encoding="utf-8")

    def search(self, question: str, k: int, now: datetime | None) -> list[str]:
        cube = self._cube()
        if now is not None:
            cube.maintenance.context.clock = lambda: now  # "last week" as of the question
        deep = k * 4 if self.mode == "extracted" else k
        hits = cube.search(question, k=deep)
        if self.mode == "extracted":
            hits = [h for h in hits if h.item.provenance.source != "message"][:k]
        return [_line(h.item) for h in hits]

    def close(self) -> None:
        if self.cube is not None:
            self.cube.close()
            self.cube = None


def _line(item: Any) -> str:
    """A memory as the answerer reads it: ``[date] speaker: text``."""
    when = item.provenance.occurred_at
    who = item.provenance.speaker
    head = f"[{when:%d %B %Y}] " if when else ""
    return f"{head}{who + ': ' if who else ''}{item.content}"
