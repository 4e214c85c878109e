"""Helpers for the LlamaIndex tests: LlamaIndex's mock function-calling LLM, scripted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import MockFunctionCallingLLM


def call(tool: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    return (tool, kwargs)


def scripted_llm(*turns: str | tuple[str, dict[str, Any]]) -> tuple[MockFunctionCallingLLM, list]:
    """A ``MockFunctionCallingLLM`` answering with ``turns`` in order: a string is a final
    answer, ``call(name, **kwargs)`` a tool call. Also returns the list of message lists the
    LLM received."""
    script = list(turns)
    received: list[Sequence[ChatMessage]] = []

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        received.append(list(messages))
        turn = script.pop(0)
        if isinstance(turn, str):
            return ChatMessage(role=MessageRole.ASSISTANT, content=turn)
        name, args = turn
        block = ToolCallBlock(
            tool_call_id=f"call-{len(received)}", tool_name=name, tool_kwargs=args
        )
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[block])

    return MockFunctionCallingLLM(response_generator=respond), received


def system_texts(messages: Sequence[ChatMessage]) -> str:
    return "\n".join(m.content or "" for m in messages if m.role == MessageRole.SYSTEM)
