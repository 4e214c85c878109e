"""Isolation by construction: through every adapter entry point, random users and random calls
never see another user's memory (a property test over one shared cube)."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from lc_helpers import scripted
from llama_index.core.base.llms.types import ChatMessage

from cubemem import InvalidFilterError, InvalidInputError, MemCube
from cubemem_langchain import (
    MemCubeMiddleware,
    MemCubeRetriever,
    MemCubeStore,
    create_memory_tools,
)
from cubemem_llamaindex import MemCubeMemory, MemCubeMemoryBlock, MemCubeToolSpec
from cubemem_llamaindex import MemCubeRetriever as LlamaRetriever

USERS = ["ana", "ben", "cai", "memories"]  # a user may be called like a namespace label
TOPICS = ["coffee", "sushi", "chess", "cello", "passwords", "flights"]
OWNER = re.compile(r"owner(\w+)")


def owners(text: str) -> set[str]:
    return set(OWNER.findall(text))


@pytest.fixture(scope="module")
def shared(tmp_path_factory, embedder):
    """One cube: every user's memories on every topic, shared (no-user) memories, and items
    written through a LangGraph store with LangGraph's ``(user_id, "memories")`` layout."""
    cube = MemCube.create(tmp_path_factory.mktemp("iso") / "cube", embedder=embedder)
    for user in USERS:
        cube.add(
            [f"{topic} note ownerX{user} likes {topic}" for topic in TOPICS],
            scope={"user": user},
            tags=["food"] if user != "cai" else ["misc"],
        )
        cube.add_messages(
            [{"speaker": user, "text": f"I told you my {t} secret ownerX{user}"} for t in TOPICS],
            session=f"chat-{user}",
            scope={"user": user},
        )
    cube.add([f"{topic} public note ownerXnobody" for topic in TOPICS])
    store = MemCubeStore(cube, scope=("{user}", "memories"), fields=["text"])
    for user in USERS:
        store.put((user, "memories"), "pref", {"text": f"coffee preference ownerX{user}"})
    yield cube
    cube.close()


def _only(user: str, text: str) -> None:
    seen = {o.removeprefix("X") for o in owners(text)}
    assert seen <= {user}, (user, seen, text)


QUERIES = st.sampled_from([*TOPICS, "what do I like?", "secret", "memories", "note", "ownerXben"])
EXTRA = st.sampled_from(
    [None, {}, {"tags": ["food"]}, {"session": "chat-ana"}, {"user": "ben"}, {"user": "ana"}]
)
ENTRY_POINTS = [
    "lc_retriever",
    "lc_tools",
    "lc_middleware",
    "lc_store",
    "li_retriever",
    "li_tools",
    "li_memory",
    "li_block",
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    entry=st.sampled_from(ENTRY_POINTS),
    user=st.sampled_from(USERS),
    query=QUERIES,
    extra=EXTRA,
)
def test_no_entry_point_shows_another_users_memory(shared, entry, user, query, extra):
    cube = shared
    if entry == "lc_retriever":
        retriever = MemCubeRetriever(cube=cube, k=10, filters={"user": user})
        if extra and extra.get("user", user) != user:
            with pytest.raises(InvalidFilterError, match="bound to user"):
                retriever.invoke(query, filters=extra)
            return
        docs = retriever.invoke(query, filters=extra)
        assert {d.metadata["scope"]["user"] for d in docs} <= {user}
        _only(user, "\n".join(d.page_content for d in docs))
    elif entry == "lc_tools":
        search = create_memory_tools(cube, user_id=user)[1]
        _only(user, search.invoke({"query": query, "k": 20}))
    elif entry == "lc_middleware":
        model = scripted("ok")
        middleware = MemCubeMiddleware(cube, user_id=user, k=10, min_score=None, store_roles=())
        agent = create_agent(model, middleware=[middleware])
        agent.invoke({"messages": [HumanMessage(query)]})
        _only(user, "\n".join(model.system_prompts()))
    elif entry == "lc_store":
        store = MemCubeStore(cube, scope=("{user}", "memories"), fields=["text"])
        items = store.search((user, "memories"), query=query, limit=10)
        assert [i.namespace for i in items] == [(user, "memories")] * len(items)
        _only(user, "\n".join(i.value["text"] for i in items))
    elif entry == "li_retriever":
        nodes = LlamaRetriever(cube, similarity_top_k=10, filters={"user": user}).retrieve(query)
        _only(user, "\n".join(n.node.get_content() for n in nodes))
    elif entry == "li_tools":
        _only(user, MemCubeToolSpec(cube, user_id=user).search_memories(query, k=20))
    elif entry == "li_memory":
        memory = MemCubeMemory.from_defaults(cube=cube, user_id=user, min_score=None)
        _only(user, "\n".join(m.content or "" for m in memory.get(input=query)))
    elif entry == "li_block":
        block = MemCubeMemoryBlock(cube=cube, user_id=user, min_score=None, similarity_top_k=10)
        text = asyncio.run(block.aget([ChatMessage(role="user", content=query)]))
        _only(user, text)


def test_store_items_belong_to_the_user_of_their_namespace(shared):
    """LangGraph's ``(user_id, "memories")``: the user's tools find the item; a user called
    "memories" does not see everyone's."""
    ana = create_memory_tools(shared, user_id="ana")[1].invoke({"query": "coffee preference"})
    assert "coffee preference ownerXana" in ana
    named_memories = create_memory_tools(shared, user_id="memories")[1].invoke(
        {"query": "coffee preference", "k": 20}
    )
    _only("memories", named_memories)


def test_store_refuses_a_namespace_its_pattern_cannot_map(shared):
    store = MemCubeStore(shared, scope=("{user}", "memories"))
    with pytest.raises(InvalidInputError, match="does not fit"):
        store.put(("memories", "ana"), "k", {"text": "x"})
    with pytest.raises(InvalidInputError, match="does not fit"):
        store.put(("ana",), "k", {"text": "x"})
    assert shared.lookup(("memories", "ana"), "k") is None
    either = MemCubeStore(shared, scope=[("{user}", "memories"), ("profiles", "{user}")])
    either.put(("profiles", "ben"), "p", {"text": "Ben's profile"})
    assert shared.lookup(("profiles", "ben"), "p").scope.user == "ben"


def test_store_scope_patterns_are_checked(shared):
    with pytest.raises(TypeError, match="no longer a position marker"):
        MemCubeStore(shared, scope=(None, "user"))  # the old positional form
    with pytest.raises(ValueError, match="placeholders"):
        MemCubeStore(shared, scope=("{owner}", "memories"))
    with pytest.raises(TypeError, match="tuple of labels"):
        MemCubeStore(shared, scope="{user}")


def test_retriever_keywords_are_checked_not_ignored(shared):
    retriever = MemCubeRetriever(cube=shared, filters={"user": "ana"})
    for bad in ({"filter": {"user": "ben"}}, {"search_kwargs": {"k": 1}}):
        with pytest.raises(TypeError, match="it takes k, filters, min_score"):
            retriever.invoke("coffee", **bad)
    with pytest.raises(TypeError, match="search_kwargs"):
        MemCubeRetriever(cube=shared, search_kwargs={"filter": {"user": "ana"}})
    with pytest.raises(TypeError, match="filter"):
        LlamaRetriever(shared, filter={"user": "ana"})
    with pytest.raises(InvalidFilterError, match="allowed keys"):
        MemCubeRetriever(cube=shared, filters={"usr": "ana"})
    # the docs' example: the call narrows the bound user to her food memories
    docs = MemCubeRetriever(cube=shared, k=5, filters={"user": "ana"}).invoke(
        "sushi", filters={"tags": ["food"]}
    )
    assert docs and {d.metadata["scope"]["user"] for d in docs} == {"ana"}
    assert all("food" in d.metadata["tags"] for d in docs)
