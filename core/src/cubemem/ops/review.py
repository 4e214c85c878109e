"""The review of quarantined writes: approve publishes one, reject refuses it.

A held memory is either a new memory (approve makes it active; reject deletes it) or a
proposal (``write.propose``): a change to an existing memory that waits while the memory stays
as readers see it. Approving a proposal applies its change to that memory — refused with a
``ConflictError`` when the memory changed since the proposal was made — and retires the
proposal; rejecting it retires it. A held version written by an earlier release (the memory
itself quarantined) is rolled back to the version before it on reject. Each decision is a new
version whose ``decision_reason`` names the reviewer.
"""

from __future__ import annotations

from typing import Any

from cubemem import access
from cubemem.errors import ConflictError, InvalidInputError
from cubemem.model import MemoryItem, Status
from cubemem.ops.context import Context
from cubemem.ops.write import get, proposal_of, revise


def held(ctx: Context, id: str, verb: str) -> MemoryItem:
    current = get(ctx, id)
    if current.status is not Status.QUARANTINED:
        raise InvalidInputError(
            f"memory {id} is {current.status.value}, not quarantined; nothing to {verb}"
        )
    return current


def target(ctx: Context, proposal: MemoryItem) -> MemoryItem | None:
    """The memory a proposal would change (None for a held new memory)."""
    record = proposal_of(proposal)
    return None if record is None else get(ctx, str(record["target"]))


def approve(ctx: Context, id: str, *, by: str) -> MemoryItem:
    """Publish a quarantined memory, or apply the change a proposal holds; returns what
    readers now see."""
    current = held(ctx, id, "approve")
    record = proposal_of(current)
    if record is None:
        published = {"status": Status.ACTIVE, "decision_reason": f"approved by {by}"}
        approved = revise(ctx, id, published, expected_version=current.version)
        if current.parent_id is not None:  # a held change of fact: its old fact ends now
            _supersede(ctx, current.parent_id, approved, by)
        return approved
    memory = get(ctx, str(record["target"]))
    if memory.version != record["version"]:
        raise ConflictError(
            f"memory {memory.id} is at version {memory.version}; this change was proposed "
            f"against version {record['version']}. Reject it and let the agent propose again",
            [memory.id],
        )
    changes: dict[str, Any] = dict(record["changes"])
    if record.get("content"):
        changes["content"] = current.content
    if record.get("value"):
        changes["value"] = current.value
    proposer = access.Actor(
        agent=current.changed_by or "unknown",
        trust=current.provenance.trust,
        quarantine=False,
        screen=False,
    )
    with access.acting(proposer):  # the version names who wrote it; the reason, who approved
        changes["decision_reason"] = f"approved by {by}"
        applied = revise(ctx, memory.id, changes, expected_version=memory.version)
    retire = {"status": Status.DELETED, "decision_reason": f"approved by {by}: applied"}
    revise(ctx, id, retire, expected_version=current.version)
    return applied


def _supersede(ctx: Context, old_id: str, successor: MemoryItem, by: str) -> None:
    """The fact a held successor (``update(..., valid_from=T)`` by an agent whose writes wait)
    replaces: superseded from T once the successor is approved (agents cannot set
    ``parent_id`` on a write of their own, so a held memory with one is such a successor)."""
    old = get(ctx, old_id)
    if old.status is not Status.ACTIVE or old.superseded_by is not None:
        return  # deleted or replaced meanwhile: the approved fact stands on its own
    at = successor.valid_since
    end = at if old.valid_to is None else min(at, old.valid_to)
    changes = {"status": Status.SUPERSEDED, "superseded_by": successor.id, "valid_to": end,
               "decision_reason": f"superseded: approved by {by}"}  # fmt: skip
    revise(ctx, old.id, changes, expected_version=old.version, reason="superseded")


def reject(ctx: Context, id: str, *, by: str) -> MemoryItem:
    """Refuse a quarantined memory or proposal."""
    current = held(ctx, id, "reject")
    history = ctx.store.versions(current.id)[:-1]
    earlier = [v for v in history if v.status is not Status.QUARANTINED]
    changes: dict[str, Any] = {"status": Status.DELETED}
    if earlier and proposal_of(current) is None:
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
