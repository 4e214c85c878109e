"""What the LlamaIndex memories read from chat messages: their text, whether they call tools,
and what the memory tools were asked to save."""

from __future__ import annotations

import json
from collections.abc import Sequence

from llama_index.core.base.llms.types import ChatMessage, TextBlock, ToolCallBlock

MEMORY_TOOLS = ("save_memory", "update_memory", "asave_memory", "aupdate_memory")
"""Tools whose ``content`` argument is stored in memory (``MemCubeToolSpec``)."""


def calls_tools(message: ChatMessage) -> bool:
    """An assistant message that asks for tools is not the turn's answer yet."""
    return bool(message.additional_kwargs.get("tool_calls")) or any(
        isinstance(block, ToolCallBlock) for block in message.blocks
    )


def message_text(message: ChatMessage) -> str:
    """The text of a chat message (its text blocks joined; tool calls and images have none)."""
    return " ".join(b.text for b in message.blocks if isinstance(b, TextBlock)).strip()


def memory_tool_contents(messages: Sequence[ChatMessage]) -> list[str]:
    """The ``content`` the memory tools were called with in ``messages``."""
    found: list[str] = []
    for message in messages:
        calls = [
            (b.tool_name, b.tool_kwargs) for b in message.blocks if isinstance(b, ToolCallBlock)
        ]
        for call in message.additional_kwargs.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            calls.append((function.get("name", ""), function.get("arguments", {})))
        for name, kwargs in calls:
            if name not in MEMORY_TOOLS:
                continue
            if isinstance(kwargs, str):
                try:
                    kwargs = json.loads(kwargs)
                except json.JSONDecodeError:
                    continue
            if isinstance(kwargs, dict) and isinstance(kwargs.get("content"), str):
                found.append(kwargs["content"])
    return found
