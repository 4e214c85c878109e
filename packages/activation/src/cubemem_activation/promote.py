"""Promotion: a session's hot memories (the cube's working memory) as one KV block.

``ActivationMemory`` listens to the cube's working-memory hook. The block for an
(agent, session) is rebuilt only when that hot set changes or one of its members is updated or
deleted; otherwise the pooled block is reused, so a local model stops re-reading the same
memories every turn. With ``prebuild=True`` a change also queues a ``promote`` task, and the
cube's workers build the new block in the background, before the next generation asks for it.

With ``parametric`` (a ``ParametricMemory`` on the same model), the adapter loaded there is part
of the model the blocks are built on, and the memories it covers are left out of them: the
model holds those in its weights, so they cost no prompt tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from cubemem.cube import MemCube
from cubemem.errors import InvalidInputError
from cubemem.ops.working import WorkingSetChange
from cubemem.render import render_memories
from cubemem_activation.block import KVBlock, build_block
from cubemem_activation.generate import Message, generate_with_memory, stream_with_memory
from cubemem_activation.parametric import content_digest
from cubemem_activation.pool import BlockPool

if TYPE_CHECKING:
    from cubemem_activation.parametric import ParametricMemory


class ActivationMemory:
    """Hot plaintext memories of a cube, promoted to KV blocks for one local model."""

    def __init__(
        self,
        cube: MemCube,
        model: Any,
        tokenizer: Any,
        *,
        pool: BlockPool | None = None,
        max_chars: int = 4000,
        header: str = "Long-term memories:",
        prebuild: bool = False,
        parametric: ParametricMemory | None = None,
    ) -> None:
        if parametric is not None and parametric.model is not model:
            raise InvalidInputError(
                "parametric must be a ParametricMemory over the same model object"
            )
        self.parametric = parametric
        self.cube = cube
        self.model = model
        self.tokenizer = tokenizer
        self.pool = pool or BlockPool()
        self.max_chars = max_chars
        self.header = header
        self.builds = 0
        self.prebuild = prebuild
        self._dirty: set[tuple[str | None, str | None]] = set()
        self._lock = threading.Lock()
        self._building = threading.Lock()  # one build at a time: a generation waits for a prebuild
        self._unsubscribe = [cube.maintenance.on_working_memory_change(self._changed)]
        if prebuild:
            self._unsubscribe.append(cube.scheduler.on_promote(self._promote, cube=cube.id))

    def _key(self, agent: str | None, session: str | None) -> str:
        adapter = self._adapter()
        return f"{self.cube.id}:{adapter.id if adapter else ''}:{agent or ''}:{session or ''}"

    def _adapter(self) -> Any:
        return None if self.parametric is None else self.parametric.loaded

    def _changed(self, change: WorkingSetChange) -> None:
        if change.reason == "deleted":  # deleted or forgotten: its block goes now, not later
            self.pool.discard(self._key(change.agent, change.session))
        with self._lock:
            self._dirty.add((change.agent, change.session))
        if self.prebuild:
            self.cube.scheduler.promote(change.agent, change.session, cube=self.cube.id)

    def _promote(self, agent: str | None, session: str | None) -> int:
        """A ``promote`` task's work: the hot set's block, built now if it changed."""
        before = self.builds
        self.block(agent, session)
        return self.builds - before

    def block(self, agent: str | None = None, session: str | None = None) -> KVBlock | None:
        """The block for this agent/session's hot set (None when the set is empty)."""
        key = self._key(agent, session)
        with self._building:
            with self._lock:
                dirty = (agent, session) in self._dirty
                self._dirty.discard((agent, session))
            if not dirty:
                cached = self.pool.get(key, device=str(self.model.device))
                if cached is not None:
                    return cached
            items = self.cube.maintenance.working_memory(agent=agent, session=session)
            adapter = self._adapter()
            if adapter is not None:  # what it learned is in the weights; edited text is not
                learned = {c.id: c.digest for c in adapter.covers}
                items = [i for i in items if learned.get(i.id) != content_digest(i.content)]
            if not items:
                self.pool.discard(key)
                return None
            text = render_memories(items, max_chars=self.max_chars, header=self.header)
            ids = tuple(i.id for i in items)
            block = build_block(self.model, self.tokenizer, text, memory_ids=ids)
            self.builds += 1
            return self.pool.put(key, block, device=str(self.model.device))

    def generate(
        self,
        messages: Sequence[Message],
        *,
        agent: str | None = None,
        session: str | None = None,
        **gen_kwargs: Any,
    ) -> str:
        with self._model_in_use():
            block = self.block(agent, session)
            return generate_with_memory(
                self.model, self.tokenizer, [block] if block else [], messages, **gen_kwargs
            )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        agent: str | None = None,
        session: str | None = None,
        **gen_kwargs: Any,
    ) -> Iterator[str]:
        with self._model_in_use():
            block = self.block(agent, session)
            yield from stream_with_memory(
                self.model, self.tokenizer, [block] if block else [], messages, **gen_kwargs
            )

    def _model_in_use(self) -> AbstractContextManager[Any]:
        """With parametric memory, its lock: training and loading change the model object, so
        they wait for a generation to end (and it for them)."""
        return self.parametric.lock if self.parametric is not None else nullcontext()

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
