"""``FunctionAgent`` with ``MemCubeToolSpec`` and ``MemCubeMemory``, driven by LlamaIndex's
mock function-calling LLM."""

from __future__ import annotations

import pytest
from li_helpers import call, scripted_llm, system_texts
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult

from cubemem_llamaindex import MemCubeMemory, MemCubeToolSpec


async def run(agent: FunctionAgent, text: str, **kwargs) -> tuple[str, list[ToolCallResult]]:
    handler = agent.run(text, **kwargs)
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    response = await handler
    return str(response), results


def agent_for(cube, user: str, *turns) -> tuple[FunctionAgent, list]:
    llm, received = scripted_llm(*turns)
    tools = MemCubeToolSpec(cube, user_id=user, agent_id="helper").to_tool_list()
    return FunctionAgent(tools=tools, llm=llm), received


async def test_saves_in_one_run_and_finds_in_a_later_one(cube):
    saver, _ = agent_for(
        cube, "ana", call("save_memory", content="Ana's passport expires in March 2027"), "Saved."
    )
    answer, results = await run(saver, "Remember my passport expires in March 2027")
    assert answer == "Saved."
    assert "Saved memory" in results[0].tool_output.content
    stored = cube.list({"user": "ana"})
    assert [(m.content, m.scope.agent) for m in stored] == [
        ("Ana's passport expires in March 2027", "helper")
    ]

    finder, _ = agent_for(
        cube, "ana", call("search_memories", query="when does my passport expire?"), "March 2027."
    )
    answer, results = await run(finder, "When does my passport expire?")
    assert "Ana's passport expires in March 2027" in results[0].tool_output.content
    assert not results[0].tool_output.is_error


async def test_update_and_delete_through_the_agent(cube):
    memory_id = cube.add("Ana works at Acme", scope={"user": "ana"}).id
    agent, _ = agent_for(
        cube,
        "ana",
        call("update_memory", memory_id=memory_id, content="Ana works at Globex"),
        call("delete_memory", memory_id=memory_id),
        "Done.",
    )
    _, results = await run(agent, "I changed jobs; actually forget where I work")
    assert [r.tool_output.is_error for r in results] == [False, False]
    assert [(v.content, v.status) for v in cube.history(memory_id)] == [
        ("Ana works at Acme", "active"),
        ("Ana works at Globex", "active"),
        ("Ana works at Globex", "deleted"),
    ]
    assert cube.get(memory_id).status == "deleted"


@pytest.mark.parametrize(
    ("tool", "kwargs", "says"),
    [
        ("save_memory", {"content": ""}, "empty"),
        ("save_memory", {"content": "x" * (1024 * 1024 + 1)}, "over the limit"),
        ("save_memory", {}, "content"),
        ("search_memories", {"query": "  "}, "empty"),
        ("search_memories", {"query": "work", "k": 99}, "k must be"),
        ("update_memory", {"memory_id": "nope", "content": "x"}, "no memory"),
        ("delete_memory", {"memory_id": "nope"}, "no memory"),
    ],
)
async def test_bad_input_is_an_error_for_the_agent_and_changes_nothing(
    cube, snapshot, tool, kwargs, says
):
    cube.add("Ana works at Acme", scope={"user": "ana"})
    before = snapshot(cube)
    agent, received = agent_for(cube, "ana", call(tool, **kwargs), "Sorry.")
    answer, results = await run(agent, "do it")
    assert answer == "Sorry."
    assert results[0].tool_output.is_error
    assert says in results[0].tool_output.content
    # the LLM got the error text back as the tool's output
    assert says in str(received[-1][-1].content)
    assert snapshot(cube) == before


async def test_users_are_isolated(cube):
    secret = cube.add("Ana's safe combination is 12-34-56", scope={"user": "ana"}).id
    agent, _ = agent_for(
        cube,
        "bob",
        call("search_memories", query="safe combination"),
        call("update_memory", memory_id=secret, content="changed"),
        call("delete_memory", memory_id=secret),
        "Nothing.",
    )
    _, results = await run(agent, "what's the safe combination?")
    assert results[0].tool_output.content == "No memories found."
    assert all(r.tool_output.is_error and "no memory" in r.tool_output.content for r in results[1:])
    assert cube.get(secret).content == "Ana's safe combination is 12-34-56"
    assert cube.get(secret).status == "active"


async def test_sync_tool_calls(cube):
    save, search, *_ = MemCubeToolSpec(cube, user_id="ana").to_tool_list()
    assert "Saved memory" in save.call(content="Ana's bike is blue").content
    assert "Ana's bike is blue" in search.call(query="bike colour").content
    assert "Ana's bike is blue" in (await search.acall(query="bike colour")).content


async def test_agent_with_memcube_memory_recalls_across_sessions(cube):
    llm, received = scripted_llm("Nice, noted.", "You moved to Porto.")
    agent = FunctionAgent(tools=[], llm=llm, system_prompt="You are helpful.")
    first = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="s1")
    await run(agent, "I just moved to Porto", memory=first)
    assert cube.scheduler.wait(timeout=60)  # put stores through the scheduler
    second = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="s2")
    answer, _ = await run(agent, "Which city did I move to?", memory=second)
    assert answer == "You moved to Porto."
    assert "I just moved to Porto" in system_texts(received[-1])
    assert cube.scheduler.wait(timeout=60)
    assert [m.content for m in cube.list({"user": "ana"})] == [
        "I just moved to Porto",
        "Which city did I move to?",
    ]  # "Nice, noted." is chatter; "You moved to Porto." repeats what memory holds


async def test_the_question_being_answered_is_not_a_search_hit(cube):
    """``MemCubeMemory`` stores a user message once its turn is answered: the agent's own
    search during the turn finds what was known before, not the question itself."""
    cube.add("Ana prefers window seats", scope={"user": "ana"})
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="ana", wait=True)
    agent, _ = agent_for(cube, "ana", call("search_memories", query="seat preference"), "Window.")
    _, results = await run(agent, "What is my seat preference on long flights?", memory=memory)
    found = results[0].tool_output.content
    assert "Ana prefers window seats" in found
    assert "long flights" not in found
    stored = [m.content for m in cube.list({"user": "ana"})]
    assert stored == [
        "Ana prefers window seats",
        "What is my seat preference on long flights?",
    ]  # "Window." repeats what memory holds


async def test_core_memory_blocks_in_context_and_edited_by_the_agent(cube):
    from cubemem.blocks import CoreMemory
    from cubemem_llamaindex import CoreMemoryToolSpec

    CoreMemory(cube, user_id="ana").set("persona", "You are Ana's travel assistant.")
    llm, received = scripted_llm(
        call("core_memory_append", block="human", text="Ana prefers aisle seats."),
        "Noted.",
        call("core_memory_replace", block="human", old="aisle", new="window"),
        "Changed.",
        call("core_memory_replace", block="human", old="middle", new="aisle"),
        "I could not find that.",
    )
    tools = CoreMemoryToolSpec(cube, user_id="ana").to_tool_list()
    agent = FunctionAgent(tools=tools, llm=llm)
    memory = MemCubeMemory.from_defaults(
        cube=cube, user_id="ana", wait=True, core_blocks=("persona", "human")
    )
    await run(agent, "I like aisle seats", memory=memory)
    await run(agent, "No wait, window seats", memory=memory)
    _, results = await run(agent, "Replace middle with aisle", memory=memory)
    assert results[0].tool_output.is_error
    assert "does not contain 'middle'" in results[0].tool_output.content
    assert CoreMemory(cube, user_id="ana").get("human") == "Ana prefers window seats."
    last = system_texts(received[-1])
    assert "<persona>\nYou are Ana's travel assistant.\n</persona>" in last
    assert "<human>\nAna prefers window seats.\n</human>" in last
    assert last.count("Ana prefers window seats.") == 1


def test_core_memory_refuses_bad_names_and_other_owners_see_nothing(cube):
    from cubemem import InvalidInputError
    from cubemem.blocks import CoreMemory

    with pytest.raises(InvalidInputError, match="block name"):
        MemCubeMemory.from_defaults(cube=cube, user_id="ana", core_blocks=("Persona!",))
    CoreMemory(cube, user_id="ana").set("human", "Ana is vegan.")
    assert CoreMemory(cube, user_id="bob").get("human") == ""
