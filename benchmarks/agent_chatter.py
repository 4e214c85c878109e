"""How much of what an agent loop recalls is chatter or a duplicate: a scripted conversation
driven through a real LangChain ``create_agent`` (memory tools + ``MemCubeMiddleware``, the
LLM extractor on, using a LangChain fake chat model that extracts by a script), once with
``filter_chatter=False`` (every message stored and recalled as it is, the behaviour before
``cubemem.chatter``) and once with the default, on fresh cubes, in one run.

Every message of the script carries a label: the piece of information it holds, or none
(chatter). A memory injected into a model call's system prompt is chatter when its label is
none, a duplicate when a memory with the same label was injected above it in the same call.

    uv run python benchmarks/agent_chatter.py --json docs/results/agent_chatter.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from cubemem import MemCube
from cubemem.extract import LLMExtractor
from cubemem_langchain import MemCubeMiddleware, create_memory_tools

# (user message, its label, the agent's steps: ("save", content, label) or (answer, label))
SESSIONS: list[list[tuple[str, str | None, list[tuple[Any, ...]]]]] = [
    [("Hi there!", None, [("Hello! How can I help you today?", None)])],
    [
        (
            "Please remember that I'm allergic to peanuts",
            "peanuts",
            [("save", "Ana is allergic to peanuts", "peanuts"),
             ("Got it, you're allergic to peanuts. I'll keep that in mind.", "peanuts")],
        ),
        ("thanks!", None, [("You're welcome!", None)]),
    ],
    [("I'm vegetarian, by the way", "vegetarian", [("Noted!", None)])],
    [("I moved to Lisbon in March", "lisbon", [("Congratulations on the move!", None)])],
    [
        (
            "My sister Lena lives in Graz",
            "lena",
            [("save", "Ana's sister Lena lives in Graz", "lena"), ("Saved.", None)],
        )
    ],
    [("I started learning the cello in January", "cello", [("How exciting!", None)])],
    [
        ("What should I cook tonight, given my diet?", None,
         [("How about a chickpea curry with spinach?", "curry")]),
        ("ok cool", None, [("Great!", None)]),
    ],
    [("What am I allergic to?", None, [("You're allergic to peanuts.", "peanuts")])],
    [("Which city do I live in now?", None, [("You live in Lisbon.", "lisbon")])],
    [("Where does my sister live?", None, [("Lena lives in Graz.", "lena")])],
    [("What instrument am I learning?", None, [("You're learning the cello.", "cello")])],
    [("Can you suggest a vegetarian dinner for Friday?", None,
      [("A mushroom risotto would be lovely.", "risotto")])],
]  # fmt: skip
FACTS = {  # what the extraction model says a user message holds
    "I'm vegetarian, by the way": "Ana is vegetarian",
    "I moved to Lisbon in March": "Ana moved to Lisbon in March",
    "I started learning the cello in January": "Ana started learning the cello in January",
    "Please remember that I'm allergic to peanuts": "Ana is allergic to peanuts",
    "My sister Lena lives in Graz": "Ana's sister Lena lives in Graz",
}


class ScriptedAgentModel(GenericFakeChatModel):
    """LangChain's fake chat model, able to bind tools, recording every call's messages."""

    received: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedAgentModel:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        self.received.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


class ExtractionModel(GenericFakeChatModel):
    """A fake chat model that extracts by the script: the facts ``FACTS`` names for the
    turns in the prompt (answered as JSON text; the extractor parses it)."""

    messages: Any = Field(default_factory=lambda: itertools.repeat(AIMessage("")))

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        prompt = messages[-1].text
        facts = []
        for label, text in re.findall(r"^\[(t\d+)\][^:]*: (.*)$", prompt, re.MULTILINE):
            if text in FACTS:
                facts.append({"text": FACTS[text], "source_ids": [label]})
        answer = AIMessage(json.dumps({"facts": facts}))
        return ChatResult(generations=[ChatGeneration(message=answer)])


def _labels() -> dict[str, str | None]:
    labels: dict[str, str | None] = {}
    for session in SESSIONS:
        for text, label, steps in session:
            labels[text] = label
            for step in steps:
                if step[0] == "save":
                    labels[step[1]] = step[2]
                else:
                    labels[step[0]] = step[1]
    user_labels = {t: lab for s in SESSIONS for t, lab, _ in s}
    for text, fact in FACTS.items():
        labels[fact] = user_labels[text]
    return labels


def _script() -> list[AIMessage]:
    out = []
    calls = itertools.count(1)
    for session in SESSIONS:
        for _, _, steps in session:
            for step in steps:
                if step[0] == "save":
                    call = {"name": "save_memory", "args": {"content": step[1]}}
                    out.append(AIMessage("", tool_calls=[{**call, "id": f"c{next(calls)}"}]))
                else:
                    out.append(AIMessage(step[0]))
    return out


def run(filter_chatter: bool, folder: Path) -> dict[str, Any]:
    labels = _labels()
    model = ScriptedAgentModel(messages=iter(_script()), received=[])
    with MemCube.create(folder) as cube:
        cube.maintenance.extractor = LLMExtractor(ExtractionModel(), decide=False)
        middleware = MemCubeMiddleware(
            cube, user_id="ana", wait=True, filter_chatter=filter_chatter
        )
        tools = create_memory_tools(cube, user_id="ana")
        agent = create_agent(
            model, tools=tools, middleware=[middleware], checkpointer=InMemorySaver()
        )
        for n, session in enumerate(SESSIONS):
            for text, _, _ in session:
                agent.invoke(
                    {"messages": [{"role": "user", "content": text}]},
                    {"configurable": {"thread_id": f"s{n}"}},
                )
        stored = [m.content for m in cube.list({"user": "ana"}, limit=1000)]
    injected = chatter = duplicates = 0
    for call in model.received:
        system = next((m.text for m in call if m.type == "system"), "")
        seen: set[str] = set()
        lines = [line for line in system.splitlines() if line.startswith("- ")]
        for line in lines:
            text = next((t for t in sorted(labels, key=len, reverse=True) if t in line), None)
            label = labels.get(text) if text else None
            injected += 1
            if label is None:
                chatter += 1
            elif label in seen:
                duplicates += 1
            else:
                seen.add(label)
    return {
        "filter_chatter": filter_chatter,
        "stored": len(stored),
        "stored_chatter": sum(labels.get(t, None) is None for t in stored),
        "model_calls": len(model.received),
        "injected": injected,
        "injected_chatter": chatter,
        "injected_duplicates": duplicates,
        "share_chatter_or_duplicate": round((chatter + duplicates) / injected, 3)
        if injected
        else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(False, Path(tmp) / "before"), run(True, Path(tmp) / "after")]
    report = {"sessions": len(SESSIONS), "before": rows[0], "after": rows[1]}
    print(json.dumps(report, indent=2))
    print("\n| | stored | stored chatter | injected | chatter | duplicates | share |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in (("filter_chatter=False", rows[0]), ("default", rows[1])):
        print(
            f"| {name} | {r['stored']} | {r['stored_chatter']} | {r['injected']} | "
            f"{r['injected_chatter']} | {r['injected_duplicates']} | "
            f"{r['share_chatter_or_duplicate']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
