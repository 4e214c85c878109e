"""Memory tools for a LangChain agent: save, search, update and delete, bound to one identity.

The application binds ``user_id`` (and optionally ``agent_id``/``session_id``) when it makes
the tools; the model only ever supplies text, a query or a memory id. A memory of another
user is "not found" to these tools, and bad input comes back to the model as an error
message (``ToolMessage`` with ``status="error"``) with nothing stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from cubemem import CubememError
from cubemem.blocks import DEFAULT_BLOCKS, CoreMemory
from cubemem.cube import CubeLike
from cubemem.tools import MAX_K, MemoryTools


class SaveMemoryInput(BaseModel):
    content: str = Field(description="The fact, preference or event to remember, as one sentence.")
    tags: list[str] = Field(default_factory=list, description="Optional short labels.")


class SearchMemoriesInput(BaseModel):
    query: str = Field(description="What to look for, in natural language.")
    k: int = Field(5, ge=1, le=MAX_K, description="How many memories to return.")
    as_of: str | None = Field(
        None, description="An ISO 8601 date: what was true then (leave out for now)."
    )


class UpdateMemoryInput(BaseModel):
    memory_id: str = Field(description="The id shown in parentheses by search_memories.")
    content: str = Field(description="The corrected text; the old text is kept in history.")
    since: str | None = Field(
        None,
        description="If the fact changed in the world (moved, new job), the ISO 8601 date it "
        "changed: the old fact is kept as true before it. Leave out to correct a mistake.",
    )


class AboutEntityInput(BaseModel):
    entity: str = Field(description="A person, place, organisation or thing, by name.")
    as_of: str | None = Field(
        None, description="An ISO 8601 date: what was true then (leave out for now)."
    )


class DeleteMemoryInput(BaseModel):
    memory_id: str = Field(description="The id shown in parentheses by search_memories.")


def create_memory_tools(
    cube: CubeLike,
    *,
    user_id: str | None,
    agent_id: str | None = None,
    session_id: str | None = None,
    max_chars: int = 4000,
) -> list[BaseTool]:
    """``save_memory``, ``search_memories``, ``update_memory``, ``delete_memory`` and
    ``about_entity`` tools.

    ```python
    tools = create_memory_tools(cube, user_id="ana", agent_id="assistant")
    agent = create_agent(model, tools=tools)
    ```
    """
    memory = MemoryTools(
        cube, user_id=user_id, agent_id=agent_id, session_id=session_id, max_chars=max_chars
    )
    specs: list[tuple[str, str, type[BaseModel], Callable[..., str]]] = [
        (
            "save_memory",
            "Remember a fact, preference or event about the user for future conversations.",
            SaveMemoryInput,
            memory.save,
        ),
        (
            "search_memories",
            "Search long-term memory for what is known about the user or past conversations.",
            SearchMemoriesInput,
            memory.search,
        ),
        (
            "update_memory",
            "Correct a remembered fact; use the id from search_memories.",
            UpdateMemoryInput,
            memory.update,
        ),
        (
            "delete_memory",
            "Forget a memory that is wrong or that the user asked to forget.",
            DeleteMemoryInput,
            memory.delete,
        ),
        (
            "about_entity",
            "What long-term memory holds about a person, place or thing: its names, what it "
            "is mentioned with, and the memories that mention it.",
            AboutEntityInput,
            memory.about,
        ),
    ]
    return _tools(specs)


class CoreAppendInput(BaseModel):
    block: str = Field(description="The core memory block: persona (you) or human (the user).")
    text: str = Field(description="What to add to it, as a sentence.")


class CoreReplaceInput(BaseModel):
    block: str = Field(description="The core memory block: persona (you) or human (the user).")
    old: str = Field(description="The exact text in the block to replace.")
    new: str = Field(description="The text to put instead (empty to delete it).")


def create_core_memory_tools(
    cube: CubeLike,
    *,
    user_id: str | None,
    agent_id: str | None = None,
    blocks: tuple[str, ...] = DEFAULT_BLOCKS,
    limit: int = 2000,
) -> list[BaseTool]:
    """``core_memory_append`` and ``core_memory_replace``: the agent edits the core memory
    blocks (``cubemem.blocks.CoreMemory``) that ``MemCubeMiddleware(core_blocks=...)`` shows
    in every prompt.

    ```python
    tools = create_memory_tools(cube, user_id="ana") + create_core_memory_tools(cube, user_id="ana")
    ```
    """
    core = CoreMemory(cube, user_id=user_id, agent_id=agent_id, blocks=blocks, limit=limit)
    specs: list[tuple[str, str, type[BaseModel], Callable[..., str]]] = [
        (
            "core_memory_append",
            "Add a lasting fact to your core memory (always in your context): the 'human' "
            "block for the user, the 'persona' block for yourself.",
            CoreAppendInput,
            core.append_tool,
        ),
        (
            "core_memory_replace",
            "Change or delete text in a core memory block; give the exact old text.",
            CoreReplaceInput,
            core.replace_tool,
        ),
    ]
    return _tools(specs)


def _tools(specs: list[tuple[str, str, type[BaseModel], Callable[..., str]]]) -> list[BaseTool]:
    return [
        StructuredTool.from_function(
            func=_as_tool_errors(fn),
            coroutine=_as_async(_as_tool_errors(fn)),
            name=name,
            description=description,
            args_schema=schema,
            handle_tool_error=True,
            handle_validation_error=_explain_invalid_arguments,
        )
        for name, description, schema, fn in specs
    ]


def _explain_invalid_arguments(exc: Exception) -> str:
    """Tell the model which argument was wrong, not just that one was."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"Error: invalid arguments: {exc}"
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in errors()]
    return "Error: invalid arguments: " + "; ".join(parts)


def _as_tool_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """cubemem's typed errors become ``ToolException``: the model reads the message."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CubememError as exc:
            raise ToolException(f"Error: {exc}") from exc

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _as_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    run.__name__ = fn.__name__
    return run
