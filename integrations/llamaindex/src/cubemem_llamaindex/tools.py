"""``MemCubeToolSpec``: save / search / update / delete memory tools for LlamaIndex agents."""

from __future__ import annotations

import asyncio
from typing import Unpack

from llama_index.core.tools.tool_spec.base import SPEC_FUNCTION_TYPE, BaseToolSpec

from cubemem.blocks import DEFAULT_BLOCKS, CoreMemory
from cubemem.cube import CubeLike
from cubemem.tools import Binding, MemoryTools


class MemCubeToolSpec(BaseToolSpec):
    """Memory tools for ``FunctionAgent`` / ``ReActAgent``, bound to one identity.

    ```python
    tools = MemCubeToolSpec(cube, user_id="ana").to_tool_list()
    agent = FunctionAgent(tools=tools, llm=llm)
    ```

    The application binds ``user_id`` (and optionally ``agent_id``/``session_id``); the model
    supplies only text, a query or a memory id. Another user's memory is "not found". Bad
    input raises a cubemem error whose message the agent receives as the tool output
    (``is_error=True``); nothing is stored.
    """

    spec_functions: list[SPEC_FUNCTION_TYPE] = [  # noqa: RUF012 - BaseToolSpec's own field
        ("save_memory", "asave_memory"),
        ("search_memories", "asearch_memories"),
        ("update_memory", "aupdate_memory"),
        ("delete_memory", "adelete_memory"),
        ("about_entity", "aabout_entity"),
    ]

    def __init__(self, cube: CubeLike, **binding: Unpack[Binding]) -> None:
        """``binding``: ``user_id`` (required, may be None), ``agent_id``, ``session_id``,
        ``max_chars``, as ``cubemem.tools.MemoryTools`` takes them."""
        self.memory = MemoryTools(cube, **binding)

    def save_memory(self, content: str, tags: list[str] | None = None) -> str:
        """Remember a fact, preference or event about the user for future conversations.

        Args:
            content: The fact to remember, as one sentence.
            tags: Optional short labels.
        """
        return self.memory.save(content, tags or [])

    async def asave_memory(self, content: str, tags: list[str] | None = None) -> str:
        """Remember a fact, preference or event about the user for future conversations."""
        return await asyncio.to_thread(self.save_memory, content, tags)

    def search_memories(self, query: str, k: int = 5, as_of: str | None = None) -> str:
        """Search long-term memory for what is known about the user or past conversations.

        Args:
            query: What to look for, in natural language.
            k: How many memories to return (1 to 20).
            as_of: An ISO 8601 date: what was true then (leave out for now).
        """
        return self.memory.search(query, k, as_of)

    async def asearch_memories(self, query: str, k: int = 5, as_of: str | None = None) -> str:
        """Search long-term memory for what is known about the user or past conversations."""
        return await asyncio.to_thread(self.search_memories, query, k, as_of)

    def update_memory(self, memory_id: str, content: str, since: str | None = None) -> str:
        """Correct a remembered fact; the old text is kept in its history.

        Args:
            memory_id: The id shown in parentheses by search_memories.
            content: The corrected text.
            since: If the fact changed in the world (moved, new job), the ISO 8601 date it
                changed: the old fact is kept as true before it. Leave out for a mistake.
        """
        return self.memory.update(memory_id, content, since)

    async def aupdate_memory(self, memory_id: str, content: str, since: str | None = None) -> str:
        """Correct a remembered fact; the old text is kept in its history."""
        return await asyncio.to_thread(self.update_memory, memory_id, content, since)

    def about_entity(self, entity: str, as_of: str | None = None) -> str:
        """What long-term memory holds about a person, place or thing.

        Args:
            entity: Its name.
            as_of: An ISO 8601 date: what was true then (leave out for now).
        """
        return self.memory.about(entity, as_of)

    async def aabout_entity(self, entity: str, as_of: str | None = None) -> str:
        """What long-term memory holds about a person, place or thing."""
        return await asyncio.to_thread(self.about_entity, entity, as_of)

    def delete_memory(self, memory_id: str) -> str:
        """Forget a memory that is wrong or that the user asked to forget.

        Args:
            memory_id: The id shown in parentheses by search_memories.
        """
        return self.memory.delete(memory_id)

    async def adelete_memory(self, memory_id: str) -> str:
        """Forget a memory that is wrong or that the user asked to forget."""
        return await asyncio.to_thread(self.delete_memory, memory_id)


class CoreMemoryToolSpec(BaseToolSpec):
    """``core_memory_append`` / ``core_memory_replace``: the agent edits the core memory
    blocks (``cubemem.blocks.CoreMemory``) that ``MemCubeMemory(core_blocks=...)`` shows in
    every prompt. Bad input (a text over the block's limit, an ``old`` the block does not
    hold) is an error message to the agent; nothing changes.

    ```python
    tools = CoreMemoryToolSpec(cube, user_id="ana").to_tool_list()
    ```
    """

    spec_functions: list[SPEC_FUNCTION_TYPE] = [  # noqa: RUF012 - BaseToolSpec's own field
        ("core_memory_append", "acore_memory_append"),
        ("core_memory_replace", "acore_memory_replace"),
    ]

    def __init__(
        self,
        cube: CubeLike,
        *,
        user_id: str | None,
        agent_id: str | None = None,
        blocks: tuple[str, ...] = DEFAULT_BLOCKS,
        limit: int = 2000,
    ) -> None:
        self.core = CoreMemory(cube, user_id=user_id, agent_id=agent_id, blocks=blocks, limit=limit)

    def core_memory_append(self, block: str, text: str) -> str:
        """Add a lasting fact to your core memory (always in your context).

        Args:
            block: "human" for what you know about the user, "persona" for yourself.
            text: What to add, as a sentence.
        """
        return self.core.append_tool(block, text)

    async def acore_memory_append(self, block: str, text: str) -> str:
        """Add a lasting fact to your core memory (always in your context)."""
        return await asyncio.to_thread(self.core_memory_append, block, text)

    def core_memory_replace(self, block: str, old: str, new: str) -> str:
        """Change or delete text in a core memory block.

        Args:
            block: "human" or "persona".
            old: The exact text in the block to replace.
            new: The text to put instead (empty to delete it).
        """
        return self.core.replace_tool(block, old, new)

    async def acore_memory_replace(self, block: str, old: str, new: str) -> str:
        """Change or delete text in a core memory block."""
        return await asyncio.to_thread(self.core_memory_replace, block, old, new)
