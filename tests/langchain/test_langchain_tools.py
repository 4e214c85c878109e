"""Bad input through the memory tools: the model gets an error message; the cube is unchanged."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from lc_helpers import scripted, tool_call

from cubemem_langchain import create_memory_tools


@pytest.fixture
def seeded(cube):
    cube.add("Ana's sister is called Eva", scope={"user": "ana"})
    return cube


def errors_from(cube, *calls) -> list[ToolMessage]:
    model = scripted(
        *[tool_call(name, f"c{i}", **args) for i, (name, args) in enumerate(calls)], "ok"
    )
    agent = create_agent(model, tools=create_memory_tools(cube, user_id="ana"))
    result = agent.invoke({"messages": [{"role": "user", "content": "go"}]})
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        ("save_memory", {"content": ""}, "empty"),
        ("save_memory", {"content": "   \n"}, "empty"),
        ("save_memory", {"content": "x" * (1024 * 1024 + 1)}, "over the limit"),
        ("save_memory", {"tags": ["a"]}, "content"),
        ("search_memories", {"query": ""}, "empty"),
        ("search_memories", {"query": "sister", "k": 500}, "k"),
        ("update_memory", {"memory_id": "no-such-id", "content": "x"}, "no memory"),
        ("update_memory", {"memory_id": "", "content": "x"}, "memory id"),
        ("delete_memory", {"memory_id": "no-such-id"}, "no memory"),
    ],
)
def test_bad_input_is_an_error_message_and_changes_nothing(seeded, snapshot, name, args, says):
    before = snapshot(seeded)
    (message,) = errors_from(seeded, (name, args))
    assert message.status == "error"
    assert says in message.text
    assert snapshot(seeded) == before


def test_update_with_empty_text_keeps_the_memory(seeded, snapshot):
    memory_id = seeded.list()[0].id
    before = snapshot(seeded)
    (message,) = errors_from(seeded, ("update_memory", {"memory_id": memory_id, "content": ""}))
    assert message.status == "error" and "empty" in message.text
    assert snapshot(seeded) == before


def test_good_calls_after_bad_ones_still_work(seeded):
    memory_id = seeded.list()[0].id
    messages = errors_from(
        seeded,
        ("save_memory", {"content": ""}),
        ("update_memory", {"memory_id": memory_id, "content": "Ana's sister is called Eve"}),
        ("search_memories", {"query": "sister's name"}),
        ("delete_memory", {"memory_id": memory_id}),
        ("search_memories", {"query": "sister's name"}),
    )
    assert [m.status for m in messages] == ["error", "success", "success", "success", "success"]
    assert "Eve" in messages[2].text and memory_id in messages[2].text
    assert messages[4].text == "No memories found."
    assert [v.content for v in seeded.history(memory_id)][-1] == "Ana's sister is called Eve"


async def test_tools_have_async_twins(seeded):
    save, search, update, delete, about = create_memory_tools(seeded, user_id="ana")
    assert "Saved memory" in await save.ainvoke({"content": "Ana runs on Sundays"})
    assert "Ana runs on Sundays" in await search.ainvoke({"query": "exercise habits"})
    memory_id = seeded.list({"tags": []}, limit=10)[-1].id
    assert "version 2" in await update.ainvoke(
        {"memory_id": memory_id, "content": "Ana runs daily"}
    )
    assert "Deleted" in await delete.ainvoke({"memory_id": memory_id})
    error = await save.ainvoke({"content": ""})
    assert error.startswith("Error:")
    assert "no memory" in await delete.ainvoke({"memory_id": memory_id})
    assert "Nothing is remembered" in await about.ainvoke({"entity": "Zanzibar"})


def test_about_entity_tells_the_model_what_an_entity_is_related_to(cube):
    cube.add("Ana Souza hiked in Sintra with Ben", scope={"user": "ana"})
    cube.add("Ben moved to Porto last year", scope={"user": "ana"})
    cube.add("Ben Carter sells boats", scope={"user": "bob"})  # another user's Ben
    about = create_memory_tools(cube, user_id="ana")[-1]
    text = about.invoke({"entity": "ben"})
    assert text.startswith("Ben (") and "in 2 memories" in text
    assert "Ana Souza (1)" in text and "Porto" in text and "boats" not in text


def test_tools_need_a_bound_identity(cube):
    with pytest.raises(ValueError, match="user_id or an agent_id"):
        create_memory_tools(cube, user_id=None)
