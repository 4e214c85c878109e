"""Memory operations for agents, bound to one identity: what every adapter's tools call.

The application binds ``user_id`` (and optionally ``agent_id``/``session_id``); the model only
supplies text, a query or a memory id. A memory of another user is "not found", so tools never
reveal or change what belongs to someone else. Results are short texts meant for a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Required, TypedDict

from cubemem.cube import CubeLike
from cubemem.errors import InvalidInputError, NotFoundError
from cubemem.limits import shown
from cubemem.model import MemoryItem, Scope, Status
from cubemem.render import render_memories

MAX_K = 20


class Binding(TypedDict, total=False):
    """Who the tools act for, as ``MemoryTools`` takes it (for adapters that pass it on)."""

    user_id: Required[str | None]
    agent_id: str | None
    session_id: str | None
    max_chars: int


class MemoryTools:
    """save / search / update / delete over one cube for one bound identity.

    Each returns a short text for the model and raises a ``CubememError`` (with a message
    saying what to fix) on bad input; adapters turn that into their framework's tool error.
    """

    def __init__(
        self,
        cube: CubeLike,
        *,
        user_id: str | None,
        agent_id: str | None = None,
        session_id: str | None = None,
        max_chars: int = 4000,
    ) -> None:
        if not isinstance(cube, CubeLike):
            raise InvalidInputError(
                f"memory tools need a MemCube, AgentCube or RemoteCube, got {type(cube).__name__}"
            )
        if user_id is None and agent_id is None:
            raise InvalidInputError("bind the tools to a user_id or an agent_id")
        self.cube = cube
        self.scope = Scope(user=user_id, agent=agent_id, session=session_id)
        self.max_chars = max_chars

    def _filters(self) -> dict[str, str]:
        return self.scope.owner_filter()

    def _owned(self, memory_id: str) -> MemoryItem:
        item = self.cube.get(memory_id)
        owner = self._filters()
        if any(getattr(item.scope, field) != value for field, value in owner.items()) or (
            item.status is Status.DELETED
        ):
            raise NotFoundError(f"no memory {shown(memory_id)}; search_memories lists valid ids")
        return item

    def save(self, content: str, tags: Sequence[str] = ()) -> str:
        if not isinstance(content, str):  # one memory per call: not a list of them
            raise InvalidInputError(f"content must be a str, got {type(content).__name__}")
        if isinstance(tags, str) or not isinstance(tags, Sequence):
            raise InvalidInputError(f"tags must be a list of strings, got {shown(tags)}")
        item = self.cube.add(content, scope=self.scope, tags=list(tags))
        return f"Saved memory ({item.id})."

    def search(self, query: str, k: int = 5, as_of: str | None = None) -> str:
        """``as_of``: an ISO 8601 date or time; what was true then (default: now)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be an int from 1 to {MAX_K}, got {shown(k)}")
        results = self.cube.search(query, k=k, filters=self._filters(), as_of=as_of or None)
        text = render_memories(results, max_chars=self.max_chars, header=None, with_ids=True)
        return text or "No memories found."

    def about(self, entity: str, as_of: str | None = None) -> str:
        """What the memories say about one person, place or thing: its names, what it is
        related to (through which memories), and the memories that mention it."""
        filters = self._filters()
        try:
            around = self.cube.relations(entity, filters=filters, as_of=as_of or None, limit=8)
            found = self.cube.entities(name=entity, filters=filters, as_of=as_of or None)
        except NotFoundError:
            return f"Nothing is remembered about {shown(entity)}."
        head = found[0] if found else None
        lines = []
        if head is not None:
            aliases = ", ".join(a for a in head.aliases if a != head.name)
            also = f"; also {aliases}" if aliases else ""
            lines.append(f"{head.name} ({head.kind}{also}): in {head.memories} memories.")
        if around:
            related = ", ".join(f"{r.target.name} ({r.weight})" for r in around)
            lines.append(f"Mentioned with: {related}.")
        results = self.cube.search(entity, k=5, filters=filters, as_of=as_of or None)
        text = render_memories(results, max_chars=self.max_chars, header=None, with_ids=True)
        return "\n".join([*lines, text]) if text else "\n".join(lines)

    # The version the ownership check read is the one written over, so a memory that changed
    # hands (or text) in between is refused with ConflictError instead of edited blind.
    def update(self, memory_id: str, content: str, since: str | None = None) -> str:
        """A correction; with ``since`` (an ISO 8601 date), a change in the world then: the
        new text is a new memory and the old one stays true before that date."""
        owned = self._owned(memory_id)
        item = self.cube.update(
            memory_id, content, expected_version=owned.version, valid_from=since or None
        )
        if item.provenance.source == "proposal":
            return f"The change to memory ({memory_id}) waits for review as ({item.id})."
        if item.id != memory_id:
            return (
                f"Recorded the change from {item.valid_since:%Y-%m-%d} as memory ({item.id}); "
                f"({memory_id}) stays true before then."
            )
        return f"Updated memory ({item.id}) to version {item.version}."

    def delete(self, memory_id: str) -> str:
        owned = self._owned(memory_id)
        held = self.cube.delete(memory_id, expected_version=owned.version)
        if held is not None:
            return f"Deleting memory ({memory_id}) waits for review as ({held.id})."
        return f"Deleted memory ({memory_id})."
