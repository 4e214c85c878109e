"""LangMem's memory tools over ``MemCubeStore``, wired as LangGraph users wire them."""

from __future__ import annotations

import json

from langchain.agents import create_agent
from langmem import create_manage_memory_tool, create_search_memory_tool
from lc_helpers import scripted, tool_call

from cubemem_langchain import USER_SECOND, MemCubeStore, create_memory_tools

NAMESPACE = ("memories", "{langgraph_user_id}")


def config(user: str) -> dict:
    return {"configurable": {"langgraph_user_id": user, "thread_id": f"t-{user}"}}


def test_langmem_tools_manage_and_search_cube_memories(cube):
    store = MemCubeStore(cube, scope=USER_SECOND)
    manage = create_manage_memory_tool(namespace=NAMESPACE, store=store)
    search = create_search_memory_tool(namespace=NAMESPACE, store=store)

    created = manage.invoke(
        {"content": "Ana prefers aisle seats", "action": "create"}, config("ana")
    )
    memory_key = created.split()[-1]
    manage.invoke({"content": "Ben prefers window seats", "action": "create"}, config("ben"))
    manage.invoke(
        {"content": "Ana prefers window seats now", "action": "update", "id": memory_key},
        config("ana"),
    )
    found = json.loads(search.invoke({"query": "seat preference"}, config("ana")))
    assert [f["value"]["content"] for f in found] == ["Ana prefers window seats now"]
    assert [tuple(f["namespace"]) for f in found] == [("memories", "ana")]

    # an ordinary, versioned cube memory of Ana's: history kept, her own tools find it
    item = cube.lookup(("memories", "ana"), memory_key)
    assert item.scope.user == "ana"
    assert [v.value["content"] for v in cube.history(item.id)] == [
        "Ana prefers aisle seats",
        "Ana prefers window seats now",
    ]
    ana_tools = create_memory_tools(cube, user_id="ana")[1].invoke({"query": "window seats"})
    assert "Ana prefers window seats now" in ana_tools and "Ben" not in ana_tools

    manage.invoke({"action": "delete", "id": memory_key}, config("ana"))
    assert json.loads(search.invoke({"query": "seat preference"}, config("ana"))) == []
    assert cube.restore(item.id).value == {"content": "Ana prefers window seats now"}


def test_langmem_tools_in_a_create_agent(cube):
    store = MemCubeStore(cube, scope=USER_SECOND)
    model = scripted(
        tool_call("manage_memory", "c1", content="Ana is allergic to peanuts", action="create"),
        tool_call("search_memory", "c2", query="allergies"),
        "Noted: no peanuts.",
    )
    agent = create_agent(
        model,
        tools=[
            create_manage_memory_tool(namespace=NAMESPACE),
            create_search_memory_tool(namespace=NAMESPACE),
        ],
        store=store,
    )
    result = agent.invoke(
        {"messages": [{"role": "user", "content": "I'm allergic to peanuts"}]}, config("ana")
    )
    outputs = [m.text for m in result["messages"] if m.type == "tool"]
    assert outputs[0].startswith("created memory")
    assert "Ana is allergic to peanuts" in outputs[1]
    assert [m.content for m in cube.list({"user": "ana"})] == ["Ana is allergic to peanuts"]
