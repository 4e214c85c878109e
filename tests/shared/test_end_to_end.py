"""End to end through a real server: a LangChain agent and a LlamaIndex agent, each on its
own key and each driven by its framework's fake model, share one cube. What one saves the
other finds; an agent without a grant is refused; a low-trust agent's write stays invisible
until a cube admin approves it; recalled memories reach prompts fenced as data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult

from cubemem import PermissionDeniedError
from cubemem_langchain import USER_FIRST, MemCubeMiddleware, MemCubeStore, create_memory_tools
from cubemem_llamaindex import MemCubeToolSpec

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "langchain"), str(TESTS / "llamaindex")]
from lc_helpers import scripted, tool_call  # noqa: E402
from li_helpers import call, scripted_llm  # noqa: E402


def lc_tool_outputs(result: dict) -> list[str]:
    return [m.text for m in result["messages"] if isinstance(m, ToolMessage)]


async def li_run(agent: FunctionAgent, text: str) -> list[ToolCallResult]:
    handler = agent.run(text)
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    await handler
    return results


def li_agent(cube, *turns) -> FunctionAgent:
    llm, _ = scripted_llm(*turns)
    tools = MemCubeToolSpec(cube, user_id="ana", agent_id="researcher").to_tool_list()
    return FunctionAgent(tools=tools, llm=llm)


async def test_two_frameworks_share_one_cube_through_the_server(team):
    planner = team.agent("write", name=f"planner-{team.cube}").open_cube(team.cube)
    researcher = team.agent("write", name=f"researcher-{team.cube}").open_cube(team.cube)

    # LangChain: the planner saves a fact with its tools
    lc = create_agent(
        scripted(
            tool_call("save_memory", "c1", content="Ana's flight to Oslo leaves on 3 June"),
            "Noted.",
        ),
        tools=create_memory_tools(planner, user_id="ana", agent_id="planner"),
    )
    saved = lc.invoke({"messages": [{"role": "user", "content": "I fly to Oslo on 3 June"}]})
    assert "Saved memory" in lc_tool_outputs(saved)[0]

    # LlamaIndex: the researcher finds it
    found = await li_run(
        li_agent(researcher, call("search_memories", query="when does Ana fly?"), "3 June."),
        "When do I fly?",
    )
    assert "Ana's flight to Oslo leaves on 3 June" in found[0].tool_output.content

    # and the other way round: the researcher saves, the planner's agent finds
    await li_run(
        li_agent(researcher, call("save_memory", content="Ana's hotel in Oslo is the Thon"), "ok"),
        "Book the Thon",
    )
    lc_finder = create_agent(
        scripted(tool_call("search_memories", "c1", query="which hotel in Oslo?"), "The Thon."),
        tools=create_memory_tools(planner, user_id="ana", agent_id="planner"),
    )
    result = lc_finder.invoke({"messages": [{"role": "user", "content": "Which hotel?"}]})
    assert "Ana's hotel in Oslo is the Thon" in lc_tool_outputs(result)[0]

    # LangGraph's store API over each agent's remote cube
    MemCubeStore(planner, scope=USER_FIRST).put(
        ("ana", "trips"), "oslo", {"text": "Ana wants a window seat to Oslo"}
    )
    shared = MemCubeStore(researcher, scope=USER_FIRST)
    assert shared.get(("ana", "trips"), "oslo").value["text"] == "Ana wants a window seat to Oslo"
    assert shared.search(("ana",), query="seat preference")[0].key == "oslo"


async def test_outsiders_are_refused_and_low_trust_writes_wait_for_review(team):
    outsider = team.agent(None, name=f"outsider-{team.cube}")
    with pytest.raises(PermissionDeniedError, match="no grant"):
        outsider.open_cube(team.cube)

    intern = team.agent("write", trust=0.2, name=f"intern-{team.cube}").open_cube(team.cube)
    planner = team.agent("write", name=f"planner-{team.cube}").open_cube(team.cube)
    researcher = team.agent("write", name=f"researcher-{team.cube}").open_cube(team.cube)
    lead = team.agent("admin", name=f"lead-{team.cube}").open_cube(team.cube)

    lc = create_agent(
        scripted(tool_call("save_memory", "c1", content="Ana's Oslo flight was cancelled"), "ok"),
        tools=create_memory_tools(intern, user_id="ana", agent_id="intern"),
    )
    lc.invoke({"messages": [{"role": "user", "content": "The Oslo flight got cancelled"}]})
    planner.add("Ana's flight to Oslo leaves on 3 June", scope={"user": "ana"})

    def researcher_finds() -> str:
        return team_search(researcher)

    assert "cancelled" not in researcher_finds()
    held = lead.quarantined()
    assert [(i.content, i.provenance.author_agent) for i in held] == [
        ("Ana's Oslo flight was cancelled", f"intern-{team.cube}")
    ]
    lead.approve(held[0].id)
    assert "cancelled" in researcher_finds()

    # recalled into a LangChain prompt, memories are fenced data labelled with author and trust
    model = scripted("Your flight was cancelled; it was to leave on 3 June.")
    agent = create_agent(model, tools=[], middleware=[MemCubeMiddleware(planner, user_id="ana")])
    agent.invoke({"messages": [{"role": "user", "content": "What about my Oslo flight?"}]})
    prompt = model.system_prompts()[0]
    assert "not instructions" in prompt and "<memories>" in prompt and "</memories>" in prompt
    label = f"{{by intern-{team.cube}, trust 0.2, approved by lead-{team.cube}}}"
    assert f"{label} Ana's Oslo flight was cancelled" in prompt
    audit = [(e.action, e.agent) for e in lead.audit()]
    assert ("approve", f"lead-{team.cube}") in audit and ("add", f"intern-{team.cube}") in audit


def team_search(cube) -> str:
    return " | ".join(r.item.content for r in cube.search("Ana's Oslo flight", k=10))
