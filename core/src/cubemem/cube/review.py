"""``SharedCube``: the surface a cube shared by agents adds — the review of what low-trust
agents wrote, and the audit log (``AgentCube`` and ``RemoteCube`` run it)."""

from __future__ import annotations

import builtins

import cubemem.cube.operations as op
from cubemem.access import AuditEntry
from cubemem.cube.base import BaseCube
from cubemem.cube.runner import twin
from cubemem.model import MemoryItem


class SharedCube(BaseCube):
    """A cube shared by agents (``AgentCube``, ``RemoteCube``): the review of what
    low-trust agents wrote, and the audit log. Each needs ``admin`` on the cube."""

    def quarantined(self, *, limit: int = 100, offset: int = 0) -> builtins.list[MemoryItem]:
        """Memories waiting for review, oldest first."""
        return self._do(op.Quarantined(limit=limit, offset=offset))

    aquarantined = twin(quarantined)

    def approve(self, id: str) -> MemoryItem:
        """Publish a quarantined memory: a new memory becomes visible to every reader; a
        proposed change is applied to its memory (``ConflictError`` if that memory changed
        since the proposal)."""
        return self._do(op.Approve(id=id))

    aapprove = twin(approve)

    def reject(self, id: str) -> MemoryItem:
        """Refuse a quarantined memory: a new memory is deleted; a proposed change to an
        existing one is retired, and that memory stays as readers saw it."""
        return self._do(op.Reject(id=id))

    areject = twin(reject)

    def audit(
        self, *, memory_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[AuditEntry]:
        """Who wrote, changed, approved and deleted what in this cube, newest first."""
        return self._do(op.Audit(memory_id=memory_id, limit=limit, offset=offset))

    aaudit = twin(audit)
