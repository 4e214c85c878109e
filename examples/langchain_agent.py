"""A LangChain 1.x agent with long-term memory in a MemCube — offline, with a scripted model.

Run: uv run python examples/langchain_agent.py [FOLDER]

To use a real model, replace `scripted_model(...)` with any tool-calling chat model, e.g.

    from langchain.chat_models import init_chat_model
    model = init_chat_model("openai:gpt-4.1-mini")      # or "anthropic:...", "ollama:qwen3", ...

and delete the scripted turns: the model then decides itself when to save and search.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from cubemem import MemCube
from cubemem_langchain import USER_FIRST, MemCubeMiddleware, MemCubeStore, create_memory_tools


class ScriptedModel(GenericFakeChatModel):
    """LangChain's fake chat model, able to bind tools (a real model does this natively);
    it keeps the last system prompt it was sent, to show what the middleware added."""

    last_system_prompt: str = ""

    def bind_tools(self, tools, **kwargs):  # type: ignore[no-untyped-def]
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        system = [m.text for m in messages if m.type == "system"]
        self.last_system_prompt = system[0] if system else ""
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def scripted_model(*turns: AIMessage | str) -> ScriptedModel:
    return ScriptedModel(messages=iter(turns))


def call(name: str, **args: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call-{name}"}])


def main(folder: Path) -> None:
    cube = MemCube.open(folder / "memory", create=True)

    # The three lines: tools bound to the user, the cube as the agent's store, automatic recall.
    model = scripted_model(
        call("save_memory", content="Ana is allergic to peanuts"),
        "Got it — I'll remember your peanut allergy.",
        "Since you're allergic to peanuts, try the lemon tart.",
    )
    agent = create_agent(
        model,
        tools=create_memory_tools(cube, user_id="ana", agent_id="assistant"),
        store=MemCubeStore(cube, scope=USER_FIRST),  # namespaces (user_id, "memories")
        middleware=[MemCubeMiddleware(cube, user_id="ana", agent_id="assistant")],
        checkpointer=InMemorySaver(),
    )

    def ask(text: str, thread: str) -> str:
        result = agent.invoke(
            {"messages": [{"role": "user", "content": text}]},
            {"configurable": {"thread_id": thread}},
        )
        return result["messages"][-1].text

    print("thread 1:", ask("Please remember I'm allergic to peanuts.", "thread-1"))
    # The middleware stored thread 1's turn in the background; let the scheduler finish it.
    cube.scheduler.wait(timeout=60)
    # A new thread has no chat history; the middleware recalls the memory into the prompt.
    # Recall injects memories whose relevance reaches 0.05 (MemCubeMiddleware(min_score=...)),
    # a calibrated chance: "given my peanut allergy" brings the allergy in, while "Which
    # dessert should I order?" alone is an inference step away from it (far below).
    print("thread 2:", ask("Which dessert should I order, given my peanut allergy?", "thread-2"))
    print("system prompt the model received in thread 2:")
    print(model.last_system_prompt)
    cube.close()


if __name__ == "__main__":  # a folder to keep the cube in, else a temporary one
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(sys.argv[1] if len(sys.argv) > 1 else tmp)
        main(folder)
