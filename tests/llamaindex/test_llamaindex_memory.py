"""``MemCubeMemoryBlock`` inside LlamaIndex's ``Memory``, and ``MemCubeMemory``."""

from __future__ import annotations

import pytest
from li_helpers import system_texts
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory import Memory

from cubemem import InvalidInputError, MemCube, Settings
from cubemem_llamaindex import MemCubeMemory, MemCubeMemoryBlock

CHATTER = [
    ("user", "I just got back from a week of hiking in the Dolomites"),
    ("assistant", "That sounds wonderful. How was the weather up there?"),
    ("user", "Sunny every day, and my knee held up fine after the surgery"),
    ("assistant", "Great to hear the knee recovered."),
    ("user", "Next I want to plan a sailing trip for the autumn"),
    ("assistant", "Autumn sailing can be lovely; where are you thinking of?"),
]


def msgs(pairs) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=text) for role, text in pairs]


def memory_with(block: MemCubeMemoryBlock, session: str, token_limit: int = 60) -> Memory:
    return Memory.from_defaults(
        session_id=session,
        token_limit=token_limit,
        token_flush_size=20,
        chat_history_token_ratio=0.5,
        memory_blocks=[block],
        insert_method="system",
    )


async def test_flushed_messages_are_recalled_in_a_new_session(cube):
    block = MemCubeMemoryBlock(cube=cube, user_id="ana")
    first = memory_with(block, "session-1")
    await first.aput_messages(msgs(CHATTER))
    # enough messages to overflow the short-term queue: the oldest were flushed into the cube
    assert cube.scheduler.wait(timeout=60)  # stored in the background by default
    stored = cube.list({"user": "ana"})
    assert stored, "nothing was flushed into the cube"
    assert stored[0].content == CHATTER[0][1]
    assert {m.scope.session for m in stored} == {"session-1"}
    assert [m.provenance.speaker for m in stored][:2] == ["user", "assistant"]

    second = memory_with(block, "session-2", token_limit=4000)
    await second.aput(ChatMessage(role="user", content="Remind me, where did I go hiking?"))
    messages = await second.aget()
    system = system_texts(messages)
    assert "hiking in the Dolomites" in system
    assert messages[-1].content == "Remind me, where did I go hiking?"


async def test_block_skips_what_is_already_in_the_chat(cube):
    cube.add_messages([{"speaker": "user", "text": "I play the oboe"}], scope={"user": "ana"})
    block = MemCubeMemoryBlock(cube=cube, user_id="ana")
    seen_in_chat = msgs([("user", "I play the oboe"), ("user", "what instrument do I play?")])
    assert await block.aget(seen_in_chat) == ""
    assert "I play the oboe" in await block.aget(msgs([("user", "what instrument do I play?")]))


async def test_block_truncates_least_relevant_first(cube):
    cube.add(
        ["Ana's first car was a red Fiat", "Ana sold her car in 2020", "Ana cycles to work"],
        scope={"user": "ana"},
    )
    block = MemCubeMemoryBlock(cube=cube, user_id="ana", similarity_top_k=3)
    content = await block.aget(msgs([("user", "what car did Ana have first?")]))
    lines = [line for line in content.splitlines() if line.startswith("- ")]
    assert len(lines) == 3 and "red Fiat" in lines[0]
    shorter = await block.atruncate(content, tokens_to_truncate=5)
    assert [line for line in shorter.splitlines() if line.startswith("- ")] == lines[:2]
    assert shorter.endswith("</memories>")  # the fence stays closed
    assert await block.atruncate(content, tokens_to_truncate=10_000) is None


async def test_memory_truncates_our_block_under_pressure(cube):
    cube.add([f"Ana's note number {i}: " + "detail " * 60 for i in range(5)], scope={"user": "ana"})
    block = MemCubeMemoryBlock(cube=cube, user_id="ana", similarity_top_k=5, max_chars=10_000)
    memory = memory_with(block, "s", token_limit=200)
    await memory.aput(ChatMessage(role="user", content="what are Ana's notes?"))
    system = system_texts(await memory.aget())
    assert 0 < system.count("Ana's note number") < 5


def test_block_needs_an_identity(cube):
    with pytest.raises(ValueError, match="user_id or an agent_id"):  # pydantic wraps it
        MemCubeMemoryBlock(cube=cube)
    with pytest.raises(InvalidInputError, match="user_id or an agent_id"):
        MemCubeMemory.from_defaults(cube=cube)


# -- MemCubeMemory ----------------------------------------------------------------------------
def test_memory_object_stores_and_recalls_across_sessions(cube):
    one = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="s1")
    one.put(ChatMessage(role="user", content="My daughter Lia starts school in September"))
    one.put(ChatMessage(role="assistant", content="Exciting! Which school?"))
    assert [m.content for m in one.get_all()] == [
        "My daughter Lia starts school in September",
        "Exciting! Which school?",
    ]
    # same session: the history already holds it, so it is not repeated as a memory
    assert system_texts(one.get()) == ""
    assert cube.scheduler.wait(timeout=60)

    two = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="s2")
    two.put(ChatMessage(role="user", content="When does my daughter start school?"))
    messages = two.get()
    assert messages[0].role == MessageRole.SYSTEM
    assert "My daughter Lia starts school in September" in messages[0].content
    assert messages[-1].content == "When does my daughter start school?"


def test_memory_object_merges_into_an_existing_system_message(cube):
    cube.add("Ana is vegetarian", scope={"user": "ana"})
    memory = MemCubeMemory.from_defaults(
        cube=cube,
        user_id="ana",
        chat_history=[ChatMessage(role="system", content="You are a cook.")],
        min_score=None,  # an inference step away from the question (relevance 0.18)
    )
    messages = memory.get(input="what should I cook tonight, given my diet?")
    assert [m.role for m in messages] == [MessageRole.SYSTEM]
    assert messages[0].content.startswith("You are a cook.\n\n")
    assert "Ana is vegetarian" in messages[0].content


async def test_memory_object_async_set_and_reset(cube):
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="a")
    await memory.aput(ChatMessage(role="user", content="I'm flying to Oslo on Friday"))
    await memory.aput_messages(msgs([("assistant", "Safe travels!")]))
    assert len(await memory.aget_all()) == 2
    await memory.aset(msgs([("user", "new history")]))
    assert [m.content for m in await memory.aget_all()] == ["new history"]
    await memory.areset()
    assert await memory.aget_all() == []
    # long-term memory survives reset; only put ever wrote to it
    assert cube.scheduler.wait(timeout=60)
    assert [m.content for m in cube.list({"user": "ana"})] == [
        "I'm flying to Oslo on Friday",
        "Safe travels!",
    ]
    fresh = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="b")
    recalled = await fresh.aget(input="when is my flight?")
    assert "I'm flying to Oslo on Friday" in system_texts(recalled)


def test_users_are_isolated(cube):
    ana = MemCubeMemory.from_defaults(cube=cube, user_id="ana")
    bob = MemCubeMemory.from_defaults(cube=cube, user_id="bob")
    ana.put(ChatMessage(role="user", content="My locker code is 4471"))
    ana.put(ChatMessage(role="assistant", content="Noted."))  # the turn is answered: stored
    assert cube.scheduler.wait(timeout=60)
    assert "4471" not in system_texts(bob.get(input="what is my locker code?"))
    assert "4471" in system_texts(
        MemCubeMemory.from_defaults(cube=cube, user_id="ana").get(input="what is my locker code?")
    )


async def test_flushes_do_not_wait_for_the_embedding_model(tmp_path, embedder):
    """Flushed messages are durable when ``aput`` returns and stored by the workers later;
    ``wait=True`` stores them before returning."""
    settings = Settings(workers=0)  # no worker yet: what the flush left behind is visible
    with MemCube.create(tmp_path / "bg", embedder=embedder, settings=settings) as cube:
        background = memory_with(MemCubeMemoryBlock(cube=cube, user_id="ana"), "s1")
        await background.aput_messages(msgs(CHATTER))
        assert cube.count({"user": "ana"}) == 0 and cube.scheduler.status().ready >= 1
        at_once = MemCubeMemory.from_defaults(cube=cube, user_id="bob", wait=True)
        await at_once.aput(ChatMessage(role="user", content="I collect stamps"))
        assert cube.list({"user": "bob"}) == []  # a question waits for its answer
        await at_once.aput(ChatMessage(role="assistant", content="Lovely!"))
        assert [m.content for m in cube.list({"user": "bob"})] == ["I collect stamps"]  # "Lovely!"
        # is chatter
        cube.scheduler.workers = 1
        cube.scheduler.start()
        assert cube.scheduler.wait(timeout=60)
        assert cube.list({"user": "ana"})[0].content == CHATTER[0][1]


def test_memory_leaves_out_what_is_unrelated(cube):
    cube.add(
        [
            "Ana plays the cello every Sunday",
            "Ana's cello teacher is called Marta",
            "Ana is learning Portuguese and Japanese",
        ],
        scope={"user": "ana"},
    )
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="ana")
    question = "what languages is Ana learning?"
    text = system_texts(memory.get(input=question))
    # the default keeps the answer (relevance 0.45) and what shares its subject, Ana (the
    # cello memories, 0.05-0.09); a stricter threshold keeps the answer alone
    assert "Portuguese" in text
    strict = MemCubeMemory.from_defaults(cube=cube, user_id="ana", min_score=0.2)
    kept = system_texts(strict.get(input=question))
    assert "Portuguese" in kept and "cello" not in kept
    assert memory.get(input="recommend a sci-fi novel") == []  # nothing relevant: no block
    memory.min_score = None  # the top k, however unrelated
    assert "cello" in system_texts(memory.get(input="languages"))


def test_the_cubes_redaction_policy_holds_for_the_memory_object(cube):
    """What a LlamaIndex agent's memory stores passes the cube's redaction policy."""
    cube.maintenance.set_redaction({"email": "mask", "card": "mask"})
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="ana", session_id="s1")
    memory.put(
        ChatMessage(role="user", content="Bill me at ana@example.com, card 4111111111111111")
    )
    memory.put(ChatMessage(role="assistant", content="Will do."))  # the turn is complete
    assert cube.scheduler.wait(timeout=60)
    stored = [m.content for m in cube.list({"user": "ana"})]
    assert "Bill me at [EMAIL], card [CARD]" in stored
    assert "ana@example.com" not in " ".join(stored)
