"""``MemCubeMiddleware``: automatic recall before each model call, capture after each turn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime

from cubemem import Scope
from cubemem.blocks import CoreMemory, is_core
from cubemem.chatter import prefer_facts, worth_keeping
from cubemem.cube import CubeLike
from cubemem.expand import QueryExpander
from cubemem.model import utcnow
from cubemem.ops.read import check_min_score
from cubemem.render import DEFAULT_HEADER, DEFAULT_MIN_SCORE, render_memories

log = logging.getLogger(__name__)

ScopeResolver = Callable[[Any], Scope | dict[str, str | None] | None]
STORABLE_ROLES = ("human", "ai", "system", "tool")
MEMORY_TOOLS = ("save_memory", "update_memory")
"""Tools whose ``content`` argument is stored in memory (``create_memory_tools``)."""


class MemCubeMiddleware(AgentMiddleware):
    """Give a ``create_agent`` agent long-term memory without tools.

    Before every model call it searches the cube for memories relevant to the latest user
    message (that user's memories only) and appends them to the system prompt, whole memories
    within ``max_chars``. After the agent finishes a turn it stores the turn's messages (the
    user message and the final answer by default) as raw memories, scoped to the user, the
    agent and the thread — in the background by default: the turn is queued durably and the
    cube's scheduler embeds and indexes it, so the agent's answer is not held up.

    ```python
    agent = create_agent(model, tools, middleware=[MemCubeMiddleware(cube, user_id="ana")])
    ```

    Args:
        cube: Where memories are searched and stored.
        user_id, agent_id: The identity memories belong to; a ``scope`` function may override
            them per run from ``runtime.context`` (e.g. a multi-user server).
        k: How many memories to retrieve per model call.
        min_score: Only memories whose relevance (0 to 1) reaches this are recalled (default
            ``DEFAULT_MIN_SCORE``, 0.05; ``None`` recalls the top ``k`` however unrelated).
        max_chars: Budget for the memory block in the system prompt.
        store_roles: Message types stored after a turn (``"human"``, ``"ai"``, ``"tool"``,
            ``"system"``); empty to only recall.
        scope: ``runtime.context -> {"user": ..., "agent": ...}``.
        header: First line of the memory block.
        wait: Store the turn before ``after_agent`` returns (searchable at once) instead of
            through the scheduler (durable at once, searchable moments later; the default).
        filter_chatter: Store only messages that say something the turn did not already put
            into memory (no "Got it!", no assistant echo of the user, no user message a memory
            tool just saved; ``cubemem.chatter``), and recall an extracted fact instead of the
            turn it came from. ``False`` stores and recalls every message.
    """

    def __init__(
        self,
        cube: CubeLike,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        k: int = 5,
        min_score: float | None = DEFAULT_MIN_SCORE,
        max_chars: int = 2000,
        store_roles: Sequence[str] = ("human", "ai"),
        scope: ScopeResolver | None = None,
        header: str = DEFAULT_HEADER,
        wait: bool = False,
        filter_chatter: bool = True,
        core_blocks: Sequence[str] = (),
        core_limit: int = 2000,
        query_model: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(cube, CubeLike):
            raise TypeError(
                f"MemCubeMiddleware needs a MemCube, AgentCube or RemoteCube, got "
                f"{type(cube).__name__}"
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"max_chars must be a positive int, got {max_chars!r}")
        unknown = sorted(set(store_roles) - set(STORABLE_ROLES))
        if unknown:
            raise ValueError(f"store_roles may name {STORABLE_ROLES}, got {unknown}")
        if user_id is None and agent_id is None and scope is None:
            raise ValueError(
                "MemCubeMiddleware needs to know whose memories these are: pass user_id= (or "
                "agent_id=), or scope= (a function from runtime.context to {'user': ...}) for "
                "an agent that serves many users"
            )
        self.cube = cube
        self.user_id = user_id
        self.agent_id = agent_id
        self.k = k
        self.min_score = None if min_score is None else check_min_score(min_score)
        self.max_chars = max_chars
        self.store_roles = tuple(store_roles)
        self.resolve_scope = scope
        self.header = header
        self.wait = wait
        self.filter_chatter = filter_chatter
        self.core_blocks = tuple(core_blocks)
        self.core_limit = core_limit
        self.expander = QueryExpander(query_model) if query_model is not None else None
        if self.core_blocks:  # names and limit checked now, not at the first model call
            CoreMemory(cube, user_id=user_id or "-", blocks=self.core_blocks, limit=core_limit)

    # -- recall ---------------------------------------------------------------------------
    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse | AIMessage:
        return handler(self._with_memories(request, self._recall(request)))

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse | AIMessage:
        block = await asyncio.to_thread(self._recall, request)
        return await handler(self._with_memories(request, block))

    def _recall(self, request: ModelRequest) -> str:
        scope = self._scope(request.runtime)
        core = self._core(scope)
        recalled = self._recalled(request, scope)
        return "\n\n".join(block for block in (core, recalled) if block)

    def _core(self, scope: Scope) -> str:
        if not self.core_blocks:
            return ""
        user, agent = (scope.user, None) if scope.user is not None else (None, scope.agent)
        core = CoreMemory(
            self.cube, user_id=user, agent_id=agent, blocks=self.core_blocks, limit=self.core_limit
        )
        return core.render()

    def _recalled(self, request: ModelRequest, scope: Scope) -> str:
        query = _latest_user_text(request.messages)
        if not query:
            return ""
        in_context = [m.text for m in request.messages]
        # Memories already in the conversation are skipped, so ask for a few more.
        wanted = self.k + min(len(in_context), self.k)

        def search(text: str) -> list[Any]:
            return self.cube.search(
                text, k=wanted, filters=scope.owner_filter(), min_score=self.min_score
            )

        results = self.expander.search(search, query) if self.expander else search(query)
        results = [r for r in results if not is_core(r.item)]  # in the prompt already
        if self.filter_chatter:
            results = prefer_facts(results)
        return render_memories(
            results, max_chars=self.max_chars, header=self.header, skip=in_context, limit=self.k
        )

    @staticmethod
    def _with_memories(request: ModelRequest, block: str) -> ModelRequest:
        if not block:
            return request
        base = request.system_message.text if request.system_message else ""
        prompt = f"{base}\n\n{block}" if base else block
        return request.override(system_message=SystemMessage(content=prompt))

    # -- capture --------------------------------------------------------------------------
    def after_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        self._capture(state, runtime)
        return None

    async def aafter_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        await asyncio.to_thread(self._capture, state, runtime, _thread_id())
        return None

    def _capture(self, state: Any, runtime: Runtime, thread_id: str | None = None) -> None:
        if not self.store_roles:
            return
        whole = _current_turn(state["messages"])
        turn = [m for m in whole if m.type in self.store_roles and m.text.strip()]
        if self.filter_chatter:
            saved = [
                str(call["args"].get("content", ""))
                for m in whole
                if isinstance(m, AIMessage)
                for call in m.tool_calls
                if call["name"] in MEMORY_TOOLS
            ]
            owner = self._scope(runtime).owner_filter()
            keep = worth_keeping(
                [(m.type, m.text) for m in turn], saved, lambda text: self._closest(text, owner)
            )
            turn = [m for m, kept in zip(turn, keep, strict=True) if kept]
        messages = [
            {"speaker": _speaker(m), "content": m.text, **({"id": m.id} if m.id else {})}
            for m in turn
        ]
        if not messages:
            return
        scope = self._scope(runtime)
        session = thread_id or _thread_id()
        self.cube.add_messages(
            messages, scope=scope, session=session, timestamp=utcnow(), wait=self.wait
        )

    def _closest(self, text: str, owner: dict[str, str]) -> list[str]:
        return [r.item.content for r in self.cube.search(text, k=3, filters=owner)]

    # -- identity -------------------------------------------------------------------------
    def _scope(self, runtime: Runtime | None) -> Scope:
        scope = Scope(user=self.user_id, agent=self.agent_id)
        if self.resolve_scope is not None and runtime is not None:
            resolved = self.resolve_scope(runtime.context)
            if resolved is not None:
                given = resolved if isinstance(resolved, Scope) else Scope(**resolved)
                scope = scope.model_copy(update=given.model_dump(exclude_none=True))
        if scope.user is None and scope.agent is None:
            raise ValueError(
                "MemCubeMiddleware has no identity for this run: pass user_id/agent_id or a "
                "scope function that returns one from runtime.context"
            )
        return scope


def _latest_user_text(messages: Sequence[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text.strip()
    return ""


def _current_turn(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The messages from the latest user message on."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return list(messages[i:])
    return []


def _speaker(message: AnyMessage) -> str:
    return message.name or {"human": "user", "ai": "assistant"}.get(message.type, message.type)


def _thread_id() -> str | None:
    try:
        thread = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # outside a runnable context
        return None
    return None if thread is None else str(thread)
