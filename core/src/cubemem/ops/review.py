"""The review of quarantined writes: approve publishes one, reject refuses it (a new memory
is deleted; a quarantined change to an existing one is rolled back to the version before it).
Each is a new version whose ``decision_reason`` names the reviewer."""

from __future__ import annotations

from typing import Any

from cubemem.errors import InvalidInputError
from cubemem.model import MemoryItem, Status
from cubemem.ops.context import Context
from cubemem.ops.write import get, revise


def _held(ctx: Context, id: str, verb: str) -> MemoryItem:
    current = get(ctx, id)
    if current.status is not Status.QUARANTINED:
        raise InvalidInputError(
            f"memory {id} is {current.status.value}, not quarantined; nothing to {verb}"
        )
    return current


def approve(ctx: Context, id: str, *, by: str) -> MemoryItem:
    """Publish a quarantined memory: it becomes visible to every reader."""
    current = _held(ctx, id, "approve")
    changes = {"status": Status.ACTIVE, "decision_reason": f"approved by {by}"}
    return revise(ctx, id, changes, expected_version=current.version)


def reject(ctx: Context, id: str, *, by: str) -> MemoryItem:
    """Refuse a quarantined memory."""
    current = _held(ctx, id, "reject")
    history = ctx.store.versions(current.id)[:-1]
    earlier = [v for v in history if v.status is not Status.QUARANTINED]
    changes: dict[str, Any] = {"status": Status.DELETED}
    if earlier:
        last = earlier[-1]
        changes = {
            "content": last.content,
            "tags": last.tags,
            "metadata": last.metadata,
            "scope": last.scope,
            "status": last.status,
        }
    changes["decision_reason"] = f"rejected by {by}"
    return revise(ctx, id, changes, expected_version=current.version)
