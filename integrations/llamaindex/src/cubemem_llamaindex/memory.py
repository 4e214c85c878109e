"""Agent memory for LlamaIndex: ``MemCubeMemoryBlock`` for ``Memory``, and ``MemCubeMemory``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.memory import BaseMemory, Memory
from llama_index.core.memory.memory import BaseMemoryBlock
from llama_index.core.utils import get_tokenizer

from cubemem import InvalidInputError, Scope
from cubemem.blocks import CoreMemory, is_core
from cubemem.chatter import prefer_facts, worth_keeping
from cubemem.cube import CubeLike
from cubemem.expand import QueryExpander
from cubemem.model import utcnow
from cubemem.render import DEFAULT_HEADER, DEFAULT_MIN_SCORE, FENCE, render_memories
from cubemem_llamaindex.messages import (
    calls_tools,
    memory_tool_contents,
    message_text,
)

STORED_ROLES = (MessageRole.USER, MessageRole.ASSISTANT)


class _CubeBinding:
    """What both memory classes share: identity, search for recall, and storing messages.
    (The pydantic subclasses declare the fields: cube, user_id, agent_id, similarity_top_k,
    max_chars, wait.)"""

    cube: CubeLike
    user_id: str | None
    agent_id: str | None
    similarity_top_k: int
    min_score: float | None
    max_chars: int
    wait: bool
    filter_chatter: bool

    def _query_expander(self) -> QueryExpander | None:
        model = getattr(self, "query_model", None)  # MemCubeMemory's; the block has none
        return QueryExpander(model) if model is not None else None

    def _owner(self) -> dict[str, str]:
        owner = Scope(user=self.user_id, agent=self.agent_id).owner_filter()
        if not owner:
            raise InvalidInputError("bind the memory to a user_id or an agent_id")
        return owner

    def _recall(self, query: str, in_context: Sequence[str], header: str | None) -> str:
        if not query.strip():
            return ""
        wanted = self.similarity_top_k + min(len(in_context), self.similarity_top_k)
        owner = self._owner()

        def search(text: str) -> list[Any]:
            return self.cube.search(text, k=wanted, filters=owner, min_score=self.min_score)

        expander = self._query_expander()
        results = expander.search(search, query) if expander else search(query)
        results = [r for r in results if not is_core(r.item)]  # shown as core memory instead
        if self.filter_chatter:
            results = prefer_facts(results)
        return render_memories(
            results,
            max_chars=self.max_chars,
            header=header,
            skip=in_context,
            limit=self.similarity_top_k,
        )

    def _store(
        self,
        messages: Sequence[ChatMessage],
        session: str | None,
        roles: Sequence[MessageRole] = STORED_ROLES,
        saved: Sequence[str] = (),
    ) -> None:
        said = [(m, t) for m in messages if m.role in roles and (t := message_text(m)).strip()]
        if self.filter_chatter and said:
            owner = self._owner()
            keep = worth_keeping(
                [(m.role.value, t) for m, t in said],
                [*saved, *memory_tool_contents(messages)],
                lambda text: [r.item.content for r in self.cube.search(text, k=3, filters=owner)],
            )
            said = [pair for pair, kept in zip(said, keep, strict=True) if kept]
        turns = [{"speaker": m.role.value, "content": t} for m, t in said]
        if not turns:
            return
        self._owner()
        scope = Scope(user=self.user_id, agent=self.agent_id)
        self.cube.add_messages(
            turns, scope=scope, session=session, timestamp=utcnow(), wait=self.wait
        )


class MemCubeMemoryBlock(_CubeBinding, BaseMemoryBlock[str]):
    """Long-term memory block for ``Memory.from_defaults(memory_blocks=[...])``.

    Messages flushed out of the short-term queue are stored in the cube (raw turns, scoped to
    the user/agent and the session) — through the cube's scheduler by default, so a flush never
    waits for the embedding model (``wait=True`` stores before returning); on every ``aget`` the
    memories relevant to the latest messages are rendered, best first, within ``max_chars``.
    Under token pressure ``Memory`` truncates this block from its least relevant memory up
    (priority 0 never truncates).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(default="long_term_memory", description="The name of the memory block.")
    cube: CubeLike = Field(description="The cube that stores and recalls memories.")
    user_id: str | None = Field(default=None, description="Whose memories these are.")
    agent_id: str | None = Field(default=None, description="The agent writing them.")
    similarity_top_k: int = Field(default=5, ge=1, description="Memories recalled per get.")
    min_score: float | None = Field(
        default=DEFAULT_MIN_SCORE,
        ge=0.0,
        le=1.0,
        description="Relevance (0 to 1) a memory needs to be recalled; None: the top k.",
    )
    retrieval_context_window: int = Field(
        default=3, ge=1, description="How many latest messages form the search query."
    )
    max_chars: int = Field(default=2000, ge=1, description="Budget for the rendered block.")
    priority: int = Field(default=1, description="Truncated before priority-0 blocks.")
    wait: bool = Field(
        default=False,
        description="Store flushed messages before returning instead of through the scheduler.",
    )
    filter_chatter: bool = Field(
        default=True,
        description="Store only what says something new (cubemem.chatter); recall a fact "
        "instead of the turn it came from.",
    )

    def model_post_init(self, context: Any) -> None:
        self._owner()

    async def _aget(
        self,
        messages: list[ChatMessage] | None = None,
        session_id: str | None = None,
        **block_kwargs: Any,
    ) -> str:
        if not messages:
            return ""
        window = messages[-self.retrieval_context_window :]
        query = " ".join(message_text(m) for m in window)
        seen = [message_text(m) for m in messages]
        return await asyncio.to_thread(self._recall, query, seen, None)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        session = next(
            (m.additional_kwargs.get("session_id") for m in messages if m.additional_kwargs),
            None,
        )
        await asyncio.to_thread(self._store, messages, session)

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Drop the least relevant memories (the last lines inside the fence) until enough
        tokens are freed, counted with LlamaIndex's default tokenizer (the one ``Memory``
        counts with by default); the fence stays closed, and no memory left means no block."""
        tokenize = get_tokenizer()
        lines = content.splitlines()
        closing = lines.pop() if lines and lines[-1] == FENCE[1] else None
        to_free = tokens_to_truncate
        while lines and lines[-1].startswith("- ") and to_free > 0:
            to_free -= len(tokenize(lines.pop() + "\n"))
        if not lines or not lines[-1].startswith("- "):
            return None
        return "\n".join([*lines, closing] if closing else lines)


class MemCubeMemory(_CubeBinding, BaseMemory):
    """Long-term memory for a LlamaIndex agent in one object (the shape of the mem0 integration).

    Short-term chat history lives in a LlamaIndex ``Memory``; every user and assistant message
    put into it is also stored in the cube (through the cube's scheduler: durable at once,
    searchable moments later; ``wait=True`` stores before returning) — a user message once the
    turn is answered (the next assistant message without tool calls, or the next user message),
    so the agent's own tools never find the question they are answering; ``get`` returns the
    history with the cube's memories relevant to the input (or the latest user message) in the
    system message, those with ``relevance`` below ``min_score`` left out.

    ```python
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="ana")
    response = await agent.run("Where did I say I was travelling?", memory=memory)
    ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cube: CubeLike
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    similarity_top_k: int = Field(default=5, ge=1)
    min_score: float | None = Field(default=DEFAULT_MIN_SCORE, ge=0.0, le=1.0)
    max_chars: int = Field(default=2000, ge=1)
    header: str = DEFAULT_HEADER
    wait: bool = False
    filter_chatter: bool = True
    query_model: Any = None
    """A chat model that rewrites the question into search queries before recall."""
    core_blocks: tuple[str, ...] = ()
    core_limit: int = Field(default=2000, ge=1)
    short_term: BaseMemory
    _pending: list[ChatMessage] = PrivateAttr(default_factory=list)
    _saved: list[str] = PrivateAttr(default_factory=list)
    """What memory tools saved since the pending user message (its turn's saves)."""

    @classmethod
    def class_name(cls) -> str:
        return "MemCubeMemory"

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls,
        *,
        cube: CubeLike,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        similarity_top_k: int = 5,
        min_score: float | None = DEFAULT_MIN_SCORE,
        max_chars: int = 2000,
        token_limit: int = 30000,
        chat_history: list[ChatMessage] | None = None,
        short_term: BaseMemory | None = None,
        wait: bool = False,
        filter_chatter: bool = True,
        core_blocks: Sequence[str] = (),
        core_limit: int = 2000,
        query_model: Any = None,
    ) -> MemCubeMemory:
        memory = cls(
            cube=cube,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            similarity_top_k=similarity_top_k,
            min_score=min_score,
            max_chars=max_chars,
            wait=wait,
            filter_chatter=filter_chatter,
            core_blocks=tuple(core_blocks),
            core_limit=core_limit,
            query_model=query_model,
            short_term=short_term
            or Memory.from_defaults(session_id=session_id, token_limit=token_limit),
        )
        memory._owner()
        if memory.core_blocks:  # names and limit checked now, not at the first get
            CoreMemory(
                cube, user_id=user_id, agent_id=agent_id, blocks=core_blocks, limit=core_limit
            )
        if chat_history:
            memory.short_term.set(chat_history)
        return memory

    # -- reading --------------------------------------------------------------------------
    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        history = self.short_term.get(**kwargs)
        return self._with_memories(history, input)

    async def aget(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        history = await self.short_term.aget(**kwargs)
        return await asyncio.to_thread(self._with_memories, history, input)

    def get_all(self) -> list[ChatMessage]:
        return self.short_term.get_all()

    async def aget_all(self) -> list[ChatMessage]:
        return await self.short_term.aget_all()

    def _with_memories(self, history: list[ChatMessage], input: str | None) -> list[ChatMessage]:
        query = input or next(
            (message_text(m) for m in reversed(history) if m.role == MessageRole.USER), ""
        )
        block = self._recall(query, [message_text(m) for m in history], self.header)
        if self.core_blocks:
            core = CoreMemory(
                self.cube,
                user_id=self.user_id,
                agent_id=self.agent_id,
                blocks=self.core_blocks,
                limit=self.core_limit,
            ).render()
            block = "\n\n".join(b for b in (core, block) if b)
        if not block:
            return history
        if history and history[0].role == MessageRole.SYSTEM:
            system = history[0]
            merged = ChatMessage(
                role=MessageRole.SYSTEM, content=f"{message_text(system)}\n\n{block}"
            )
            return [merged, *history[1:]]
        return [ChatMessage(role=MessageRole.SYSTEM, content=block), *history]

    # -- writing --------------------------------------------------------------------------
    def put(self, message: ChatMessage) -> None:
        self.short_term.put(message)
        self._keep(self._turn([message]))

    async def aput(self, message: ChatMessage) -> None:
        await self.short_term.aput(message)
        await asyncio.to_thread(self._keep, self._turn([message]))

    def put_messages(self, messages: list[ChatMessage]) -> None:
        self.short_term.put_messages(messages)
        self._keep(self._turn(messages))

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        await self.short_term.aput_messages(messages)
        await asyncio.to_thread(self._keep, self._turn(messages))

    def flush(self) -> None:
        """Store a user message still waiting for its answer (e.g. before the program ends)."""
        self._keep(self._turn([], flush=True))

    def _keep(self, turn: tuple[list[ChatMessage], list[str]]) -> None:
        self._store(turn[0], self.session_id, saved=turn[1])

    def _turn(
        self, messages: Sequence[ChatMessage], *, flush: bool = False
    ) -> tuple[list[ChatMessage], list[str]]:
        """What to store now (user messages wait until their turn is answered), and what
        memory tools saved in the turns it ends."""
        ready: list[ChatMessage] = []
        saved: list[str] = []
        for message in messages:
            if message.role == MessageRole.USER:
                ready.extend(self._pending)
                saved += self._saved
                self._pending, self._saved = [message], []
            elif message.role == MessageRole.ASSISTANT and not calls_tools(message):
                ready.extend(self._pending)
                saved += self._saved
                self._pending, self._saved = [], []
                ready.append(message)
            else:
                self._saved += memory_tool_contents([message])
                ready.append(message)
        if flush:
            ready.extend(self._pending)
            saved += self._saved
            self._pending, self._saved = [], []
        return ready, saved

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace the short-term history; long-term memory keeps what it has and is not
        re-fed the whole history (only new messages, by ``put``, are stored)."""
        self.short_term.set(messages)

    async def aset(self, messages: list[ChatMessage]) -> None:
        await self.short_term.aset(messages)

    def reset(self) -> None:
        """Clear the short-term history (a waiting user message is stored first). Long-term
        memories stay; delete them in the cube."""
        self.flush()
        self.short_term.reset()

    async def areset(self) -> None:
        await asyncio.to_thread(self.flush)
        await self.short_term.areset()
