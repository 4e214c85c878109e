"""End to end: real ``create_agent`` graphs driven by LangChain's fake chat model."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import ToolRuntime
from lc_helpers import scripted, tool_call

from cubemem import MemCube, Settings
from cubemem_langchain import MemCubeMiddleware, MemCubeStore, create_memory_tools


def tool_outputs(result: dict) -> list[str]:
    return [m.text for m in result["messages"] if isinstance(m, ToolMessage)]


def run(agent, text: str, thread: str, **kwargs):
    return agent.invoke(
        {"messages": [{"role": "user", "content": text}]},
        {"configurable": {"thread_id": thread}},
        **kwargs,
    )


def test_saved_in_one_thread_found_in_another(cube):
    tools = create_memory_tools(cube, user_id="ana", agent_id="assistant")
    model = scripted(
        tool_call("save_memory", "c1", content="Ana is allergic to peanuts", tags=["health"]),
        "Noted: no peanuts.",
        tool_call("search_memories", "c2", query="what is Ana allergic to?"),
        "You are allergic to peanuts.",
    )
    agent = create_agent(model, tools=tools, checkpointer=InMemorySaver())
    first = run(agent, "Remember that I'm allergic to peanuts", "thread-1")
    assert "Saved memory" in tool_outputs(first)[0]
    second = run(agent, "What am I allergic to?", "thread-2")
    assert "Ana is allergic to peanuts" in tool_outputs(second)[0]
    saved = cube.list({"user": "ana"})
    assert [(m.content, m.scope.agent, m.tags) for m in saved] == [
        ("Ana is allergic to peanuts", "assistant", ["health"])
    ]


async def test_saved_and_found_async(cube):
    tools = create_memory_tools(cube, user_id="ana")
    model = scripted(
        tool_call("save_memory", "c1", content="Ana's daughter is called Lia"),
        "Saved.",
        tool_call("search_memories", "c2", query="daughter's name", k=3),
        "Lia.",
    )
    agent = create_agent(model, tools=tools, checkpointer=InMemorySaver())
    await agent.ainvoke(
        {"messages": [{"role": "user", "content": "My daughter is Lia"}]},
        {"configurable": {"thread_id": "a"}},
    )
    second = await agent.ainvoke(
        {"messages": [{"role": "user", "content": "What's my daughter's name?"}]},
        {"configurable": {"thread_id": "b"}},
    )
    assert "Ana's daughter is called Lia" in tool_outputs(second)[0]


def test_two_users_never_see_each_other(cube):
    ana = create_memory_tools(cube, user_id="ana")
    bob = create_memory_tools(cube, user_id="bob")
    ana_agent = create_agent(
        scripted(tool_call("save_memory", "c1", content="my bank PIN hint is 'otter'"), "ok"),
        tools=ana,
    )
    run(ana_agent, "remember my PIN hint", "t1")
    ana_id = cube.list({"user": "ana"})[0].id
    bob_agent = create_agent(
        scripted(
            tool_call("search_memories", "c1", query="bank PIN hint"),
            tool_call("update_memory", "c2", memory_id=ana_id, content="hacked"),
            tool_call("delete_memory", "c3", memory_id=ana_id),
            "nothing",
        ),
        tools=bob,
    )
    outputs = tool_outputs(run(bob_agent, "what is the PIN hint?", "t2"))
    assert outputs[0] == "No memories found."
    assert "no memory" in outputs[1] and "no memory" in outputs[2]
    assert cube.get(ana_id).content == "my bank PIN hint is 'otter'"
    assert cube.get(ana_id).version == 1


def test_middleware_puts_memories_in_the_system_prompt(cube):
    cube.add("Ana is vegetarian", scope={"user": "ana"})
    cube.add("Ana lives in Porto", scope={"user": "ana"})
    cube.add("Bob is vegetarian too", scope={"user": "bob"})
    model = scripted("Try the mushroom risotto.")
    agent = create_agent(
        model,
        system_prompt="You are a helpful cook.",
        middleware=[MemCubeMiddleware(cube, user_id="ana", k=3, min_score=None)],
    )
    run(agent, "What should I cook for dinner, given my diet?", "t1")
    (prompt,) = model.system_prompts()
    assert prompt.startswith("You are a helpful cook.")
    assert "Ana is vegetarian" in prompt and "Ana lives in Porto" in prompt
    assert "Bob" not in prompt


def test_middleware_respects_the_budget(cube):
    cube.add(
        ["Ana likes " + word * 40 for word in ("tea ", "jazz ", "chess ")], scope={"user": "ana"}
    )
    model = scripted("ok")
    agent = create_agent(model, middleware=[MemCubeMiddleware(cube, user_id="ana", max_chars=300)])
    run(agent, "what does Ana like? tea jazz chess", "t")
    (prompt,) = model.system_prompts()
    assert len(prompt) <= 300
    assert prompt.count("Ana likes") == 1


def test_middleware_stores_the_turn_and_recalls_it_next_time(cube):
    middleware = MemCubeMiddleware(cube, user_id="ana", agent_id="chef")
    model = scripted("Noted, you love spicy food.", "You love spicy food.")
    agent = create_agent(model, middleware=[middleware], checkpointer=InMemorySaver())
    run(agent, "I really love spicy Sichuan food", "thread-1")
    assert cube.scheduler.wait(timeout=60)  # stored in the background by default
    stored = cube.list({"user": "ana"})
    # the assistant's "Noted, you love spicy food." only echoes the user: not stored
    assert [(m.provenance.speaker, m.content) for m in stored] == [
        ("user", "I really love spicy Sichuan food"),
    ]
    assert {m.scope.session for m in stored} == {"thread-1"}
    assert {m.scope.agent for m in stored} == {"chef"}
    run(agent, "What food do I love?", "thread-2")
    assert "I really love spicy Sichuan food" in model.system_prompts()[-1]


async def test_middleware_async(cube):
    cube.add("Ana's flight to Oslo leaves on Friday", scope={"user": "ana"})
    model = scripted("Friday.")
    agent = create_agent(model, middleware=[MemCubeMiddleware(cube, user_id="ana")])
    await agent.ainvoke({"messages": [{"role": "user", "content": "When is my flight to Oslo?"}]})
    assert "Ana's flight to Oslo leaves on Friday" in model.system_prompts()[0]
    assert cube.scheduler.wait(timeout=60)
    assert cube.count({"user": "ana", "agent": None}) >= 1
    stored = [m.content for m in cube.list({"user": "ana"})]
    assert "When is my flight to Oslo?" in stored
    assert "Friday." not in stored  # the answer repeats what memory holds


def test_middleware_scope_from_runtime_context(cube):
    from dataclasses import dataclass

    @dataclass
    class Context:
        user_id: str

    cube.add("Ana's dog is Rex", scope={"user": "ana"})
    cube.add("Bob's dog is Max", scope={"user": "bob"})
    model = scripted("Max.", "Rex.")
    agent = create_agent(
        model,
        middleware=[MemCubeMiddleware(cube, scope=lambda ctx: {"user": ctx.user_id})],
        context_schema=Context,
    )
    run(agent, "what is my dog called?", "t1", context=Context(user_id="bob"))
    run(agent, "what is my dog called?", "t2", context=Context(user_id="ana"))
    bob_prompt, ana_prompt = model.system_prompts()
    assert "Max" in bob_prompt and "Rex" not in bob_prompt
    assert "Rex" in ana_prompt and "Max" not in ana_prompt


def test_middleware_without_identity_is_a_clear_error(cube):
    with pytest.raises(ValueError, match="whose memories"):
        MemCubeMiddleware(cube)  # refused when built, not at the first invoke
    # a scope function that finds no user in this run's context: refused at that run
    middleware = MemCubeMiddleware(cube, scope=lambda context: None)
    agent = create_agent(scripted("hi"), middleware=[middleware])
    with pytest.raises(ValueError, match="no identity"):
        run(agent, "hello", "t")


def test_agent_store_is_usable_from_tools(cube):
    """``create_agent(..., store=MemCubeStore(cube))``: tools read and write ``runtime.store``."""

    @tool
    def remember_preference(preference: str, runtime: ToolRuntime) -> str:
        """Store a user preference."""
        runtime.store.put(("memories", "ana"), "preference", {"text": preference})
        return "stored"

    @tool
    def recall_preference(query: str, runtime: ToolRuntime) -> str:
        """Look up the user's preferences."""
        hits = runtime.store.search(("memories", "ana"), query=query, limit=1)
        return hits[0].value["text"] if hits else "nothing"

    model = scripted(
        tool_call("remember_preference", "c1", preference="Ana prefers window seats"),
        tool_call("recall_preference", "c2", query="seat preference on planes"),
        "Window seat.",
    )
    store = MemCubeStore(cube, scope=("memories", "{user}"))
    agent = create_agent(model, tools=[remember_preference, recall_preference], store=store)
    outputs = tool_outputs(run(agent, "book me a flight", "t"))
    assert outputs == ["stored", "Ana prefers window seats"]
    # the store's item is an ordinary memory of that user: the memory tools find it too
    found = create_memory_tools(cube, user_id="ana")[1].invoke({"query": "window seats"})
    assert "Ana prefers window seats" in found


def test_middleware_does_not_repeat_what_the_thread_already_shows(cube):
    model = scripted("Noted: you keep bees.", "You keep bees.")
    agent = create_agent(
        model,
        middleware=[MemCubeMiddleware(cube, user_id="ana", wait=True)],  # stored before recall
        checkpointer=InMemorySaver(),
    )
    run(agent, "I keep bees on my roof", "same-thread")
    run(agent, "What do I keep on my roof?", "same-thread")
    # the first turn is stored, but in this thread the model already has it as chat history
    assert not any("I keep bees on my roof" in p for p in model.system_prompts())
    stored = [m.content for m in cube.list({"user": "ana"})]
    assert stored == [
        "I keep bees on my roof",
        "What do I keep on my roof?",
    ]  # each turn stored once, even though the thread replays the first ("Noted: you keep
    # bees." echoes the user; "You keep bees." repeats what memory holds)


def test_middleware_stores_turns_without_holding_up_the_agent(tmp_path, embedder):
    """The turn is durable when the run returns; embedding and indexing happen on workers."""
    settings = Settings(workers=0)  # no worker yet: what the run left behind is visible
    with MemCube.create(tmp_path / "bg", embedder=embedder, settings=settings) as cube:
        agent = create_agent(
            scripted("Noted."), middleware=[MemCubeMiddleware(cube, user_id="ana")]
        )
        run(agent, "My locker code is 4711", "t")
        assert cube.count({"user": "ana"}) == 0
        assert cube.scheduler.status().ready == 1  # one durable task holding the turn
        cube.scheduler.workers = 1
        cube.scheduler.start()
        assert cube.scheduler.wait(timeout=60)
        assert [m.content for m in cube.list({"user": "ana"})] == [
            "My locker code is 4711",
        ]  # "Noted." is chatter
        assert cube.search("locker code", k=1, filters={"user": "ana"})[0].item.content == (
            "My locker code is 4711"
        )


def test_tools_and_middleware_together_store_no_chatter(cube):
    """The user asks to remember, the model saves it with the tool and acknowledges: the
    saved memory is the only one; the thanks and the acknowledgement are not stored, and the
    next question gets the fact once."""
    tools = create_memory_tools(cube, user_id="ana")
    model = scripted(
        tool_call("save_memory", "c1", content="Ana is allergic to peanuts"),
        "Got it, you're allergic to peanuts. I'll remember that.",
        "You're welcome!",
        "Then skip the satay sauce.",
    )
    middleware = MemCubeMiddleware(cube, user_id="ana", wait=True)
    agent = create_agent(model, tools=tools, middleware=[middleware], checkpointer=InMemorySaver())
    run(agent, "Please remember that I'm allergic to peanuts", "t1")
    run(agent, "thanks!", "t1")
    assert [m.content for m in cube.list({"user": "ana"})] == ["Ana is allergic to peanuts"]
    run(agent, "Any allergy I should tell the waiter about?", "t2")
    assert model.system_prompts()[-1].count("allergic to peanuts") == 1
    assert [m.content for m in cube.list({"user": "ana"})] == [
        "Ana is allergic to peanuts",
        "Any allergy I should tell the waiter about?",
        "Then skip the satay sauce.",
    ]


def test_without_the_filter_every_message_is_stored(cube):
    model = scripted("Noted.")
    middleware = MemCubeMiddleware(cube, user_id="ana", wait=True, filter_chatter=False)
    run(create_agent(model, middleware=[middleware]), "ok", "t")
    assert [m.content for m in cube.list({"user": "ana"})] == ["ok", "Noted."]


def test_core_memory_blocks_are_in_every_prompt_and_edited_by_tool_calls(cube):
    """Letta's core memory: blocks always in context, edited by the agent's tool calls and by
    the application, versioned, kept out of recall, and within their limit."""
    from cubemem.blocks import CoreMemory
    from cubemem_langchain import create_core_memory_tools

    core = CoreMemory(cube, user_id="ana", limit=200)
    core.set("persona", "You are Ana's cooking assistant.")
    tools = create_core_memory_tools(cube, user_id="ana", limit=200)
    model = scripted(
        tool_call("core_memory_append", "c1", block="human", text="Ana is vegetarian."),
        "I'll remember that.",
        tool_call("core_memory_replace", "c2", block="human", old="vegetarian", new="vegan"),
        "Updated.",
        tool_call("core_memory_append", "c3", block="human", text="x" * 300),
        "That did not fit.",
        "Try a lentil dal.",
    )
    middleware = MemCubeMiddleware(
        cube, user_id="ana", wait=True, core_blocks=("persona", "human"), core_limit=200
    )
    agent = create_agent(model, tools=tools, middleware=[middleware], checkpointer=InMemorySaver())
    run(agent, "I'm vegetarian", "t1")
    assert core.get("human") == "Ana is vegetarian."
    run(agent, "Actually I went vegan", "t1")
    assert core.get("human") == "Ana is vegan."
    result = run(agent, "Remember this long thing", "t1")
    assert "over its limit of 200" in tool_outputs(result)[-1]
    assert core.get("human") == "Ana is vegan."  # the refused edit changed nothing
    run(agent, "What should I cook?", "t2")
    prompt = model.system_prompts()[-1]
    assert "<persona>\nYou are Ana's cooking assistant.\n</persona>" in prompt
    assert "<human>\nAna is vegan.\n</human>" in prompt
    assert prompt.count("Ana is vegan.") == 1  # the block is not also recalled as a memory
    history = cube.history(core._item("human").id)  # type: ignore[union-attr]
    assert [v.content for v in history] == ["Ana is vegetarian.", "Ana is vegan."]


def test_the_agents_model_rewrites_an_inference_question_before_recall(cube):
    """ "What should I cook, given my diet?" shares no word with "Ana is vegetarian": with
    a strict threshold the plain search injects nothing; the query model's rewrite ("diet",
    "vegetarian or vegan") finds it. A query model that fails leaves recall as it was."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    for text in ["Ana is vegetarian", "Ana's favourite colour is green", "Ana takes the tram"]:
        cube.add(text, scope={"user": "ana"})
    question = "What should I cook tonight, given my diet?"

    def prompt_with(query_model) -> str:  # type: ignore[no-untyped-def]
        model = scripted("Try a lentil dal.")
        middleware = MemCubeMiddleware(
            cube, user_id="ana", min_score=0.1, query_model=query_model, store_roles=()
        )
        run(create_agent(model, middleware=[middleware]), question, "t")
        return "\n".join(model.system_prompts())

    assert "Ana is vegetarian" not in prompt_with(None)
    rewriter = GenericFakeChatModel(messages=iter(['{"queries": ["diet", "vegetarian or vegan"]}']))
    assert "Ana is vegetarian" in prompt_with(rewriter)

    class Down(GenericFakeChatModel):
        def _generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("rate limited")

    assert "Ana is vegetarian" not in prompt_with(Down(messages=iter([])))  # and no error
