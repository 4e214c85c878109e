"""Core memory blocks: a few named texts per user or agent — ``persona`` (who the agent is),
``human`` (what it knows about the person), or any name — that are always in the prompt
rather than searched for, and that the agent edits through tools (``core_memory_append``,
``core_memory_replace``, as Letta names them) and the application through ``set``.

Each block is a keyed memory of the cube (namespace ``("core_memory", NAME)``, key the owner,
scoped to the owner), so it is versioned like every memory (``history`` shows each edit),
kept to the owner's grants, exported and composed, and reachable on every surface: a
``MemCube``, an ``AgentCube`` or a ``RemoteCube`` (and so REST and MCP, whose keyed routes
and tools read and write the same memories). Recall leaves blocks out (they are in the
prompt already). ``limit`` characters per block; an edit that would pass it is
``InvalidInputError`` and changes nothing.

```python
core = CoreMemory(cube, user_id="ana")
core.set("persona", "You are Ana's cooking assistant.")
core.append("human", "Ana is vegetarian.")
prompt_block = core.render()
```
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cubemem.errors import InvalidInputError
from cubemem.model import MemoryItem, Scope
from cubemem.render import DATA_NOTE, FENCE, one_line

__all__ = ["CORE_NAMESPACE", "DEFAULT_BLOCKS", "CoreMemory", "is_core"]

CORE_NAMESPACE = "core_memory"
DEFAULT_BLOCKS = ("persona", "human")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def is_core(item: MemoryItem) -> bool:
    """Whether ``item`` is a core memory block (recall leaves these out)."""
    return bool(item.namespace) and item.namespace[0] == CORE_NAMESPACE  # type: ignore[index]


class CoreMemory:
    """The core memory blocks of one user (``user_id``) or agent (``agent_id``) in ``cube``."""

    def __init__(
        self,
        cube: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        blocks: Sequence[str] = DEFAULT_BLOCKS,
        limit: int = 2000,
    ) -> None:
        from cubemem.cube import CubeLike

        if not isinstance(cube, CubeLike):
            raise InvalidInputError(
                f"CoreMemory needs a MemCube, AgentCube or RemoteCube, got {type(cube).__name__}"
            )
        if user_id is None and agent_id is None:
            raise InvalidInputError("core memory belongs to someone: pass user_id= or agent_id=")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
        self.cube = cube
        self.scope = Scope(user=user_id, agent=agent_id)
        self.owner = f"user:{user_id}" if user_id is not None else f"agent:{agent_id}"
        self.blocks = tuple(self._name(b) for b in blocks)
        self.limit = limit

    @staticmethod
    def _name(name: Any) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                f"a block name is 1-40 lower-case letters, digits or _, starting with a "
                f"letter (persona, human, ...), got {name!r}"
            )
        return name

    def _item(self, name: str) -> MemoryItem | None:
        return self.cube.lookup((CORE_NAMESPACE, self._name(name)), self.owner)

    def get(self, name: str) -> str:
        """The block's text ("" when it was never written)."""
        item = self._item(name)
        return item.content if item is not None else ""

    def all(self) -> dict[str, str]:
        """Every block this memory shows, in order, with its text."""
        return {name: self.get(name) for name in self.blocks}

    def set(self, name: str, text: str) -> MemoryItem:
        """Replace the block's text (a new version; the old one stays in ``history``)."""
        name = self._name(name)
        if not isinstance(text, str):
            raise InvalidInputError(f"a block's text must be a str, got {type(text).__name__}")
        text = text.strip()
        if len(text) > self.limit:
            raise InvalidInputError(
                f"block {name!r} would hold {len(text)} characters, over its limit of "
                f"{self.limit}: replace or shorten something first (core_memory_replace), or "
                "raise CoreMemory(limit=...)"
            )
        if name not in self.blocks:
            self.blocks = (*self.blocks, name)
        return self.cube.put(
            (CORE_NAMESPACE, name), self.owner, text, scope=self.scope, tags=["core_memory"]
        )

    def append(self, name: str, text: str) -> MemoryItem:
        """Add ``text`` to the end of the block (on a line of its own)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("give the text to append")
        current = self.get(name)
        return self.set(name, f"{current}\n{text.strip()}" if current else text)

    def replace(self, name: str, old: str, new: str) -> MemoryItem:
        """Replace the exact text ``old`` in the block by ``new`` ("" deletes it)."""
        if not isinstance(old, str) or not old:
            raise InvalidInputError("give the exact text to replace (old=)")
        if not isinstance(new, str):
            raise InvalidInputError(f"new must be a str, got {type(new).__name__}")
        current = self.get(name)
        if old not in current:
            raise InvalidInputError(
                f"block {name!r} does not contain {old!r}; copy the text exactly as the block "
                "shows it"
            )
        return self.set(name, current.replace(old, new, 1))

    def render(self) -> str:
        """The blocks for a system prompt, fenced as data like recalled memories ("" when all
        are empty)."""
        filled = [(name, text) for name, text in self.all().items() if text]
        if not filled:
            return ""
        lines = ["Core memory (always shown; edit with core_memory_append/replace):", DATA_NOTE]
        lines.append(FENCE[0])
        for name, text in filled:
            lines.append(f"<{name}>")
            lines.extend(one_line(line) for line in text.splitlines() if line.strip())
            lines.append(f"</{name}>")
        lines.append(FENCE[1])
        return "\n".join(lines)

    # -- what the agent's tools say back ---------------------------------------------------
    def append_tool(self, block: str, text: str) -> str:
        item = self.append(block, text)
        return f"Appended to {block} ({len(item.content)}/{self.limit} characters)."

    def replace_tool(self, block: str, old: str, new: str) -> str:
        item = self.replace(block, old, new)
        return f"Replaced in {block} ({len(item.content)}/{self.limit} characters)."
