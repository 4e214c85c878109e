"""A LlamaIndex FunctionAgent with long-term memory in a MemCube — offline, with a mock LLM.

Run: uv run python examples/llamaindex_agent.py [FOLDER]

The scripted MockFunctionCallingLLM stands in for a real model. With a real one, e.g.

    from llama_index.llms.openai import OpenAI          # pip install llama-index-llms-openai
    agent = FunctionAgent(tools=tools, llm=OpenAI(model="gpt-4.1-mini"), system_prompt=...)

drop the script: the model decides itself when to save and search.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
from llama_index.core.llms import MockFunctionCallingLLM

from cubemem import MemCube
from cubemem_llamaindex import MemCubeMemory, MemCubeToolSpec


def scripted_llm(*turns):  # type: ignore[no-untyped-def]
    """Answers in order: a str is a reply, a (tool, kwargs) pair a tool call."""
    script = list(turns)
    received: list[list[ChatMessage]] = []

    def respond(messages, **kwargs):  # type: ignore[no-untyped-def]
        received.append(list(messages))
        turn = script.pop(0)
        if isinstance(turn, str):
            return ChatMessage(role="assistant", content=turn)
        name, args = turn
        block = ToolCallBlock(
            tool_call_id=f"call-{len(received)}", tool_name=name, tool_kwargs=args
        )
        return ChatMessage(role="assistant", blocks=[block])

    return MockFunctionCallingLLM(response_generator=respond), received


async def ask(agent: FunctionAgent, text: str, memory: MemCubeMemory) -> str:
    handler = agent.run(text, memory=memory)
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            print(f"  tool {event.tool_name} -> {event.tool_output.content}")
    return str(await handler)


async def main(folder: Path) -> None:
    with MemCube.create(folder / "memory") as cube:
        tools = MemCubeToolSpec(cube, user_id="ana", agent_id="concierge").to_tool_list()
        llm, received = scripted_llm(
            ("save_memory", {"content": "Ana prefers aisle seats on long flights"}),
            "Noted: aisle seats.",
            "I'll book you an aisle seat.",
        )
        agent = FunctionAgent(tools=tools, llm=llm, system_prompt="You are a travel concierge.")

        session_1 = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="monday")
        print(
            "monday:", await ask(agent, "On long flights I always want an aisle seat.", session_1)
        )

        # MemCubeMemory stored monday's messages in the background; let the scheduler finish.
        cube.scheduler.wait(timeout=60)
        # a new session has no chat history; MemCubeMemory recalls from the cube
        session_2 = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="friday")
        print("friday:", await ask(agent, "Book my flight to Tokyo, the usual seat.", session_2))
        # FunctionAgent sends its own system prompt first, then the memory's system message
        print("system messages the LLM received on friday:")
        print("\n".join(m.content for m in received[-1] if m.role == "system"))


if __name__ == "__main__":  # a folder to keep the cube in, else a temporary one
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(sys.argv[1] if len(sys.argv) > 1 else tmp)
        asyncio.run(main(folder))
