"""The two timelines of a memory (after Graphiti's ``valid_at``/``invalid_at`` and
``created_at``/``expired_at``):

- **valid time** ``[valid_from, valid_to)``: when it was true in the world. A turn is valid
  from when it occurred; a fact from when it was said (or ``valid_from``). A change in the world
  is a *successor*: ``update(id, text, valid_from=T)`` stores the new fact, valid from ``T``, and
  the old one stays, valid until ``T`` (``superseded``, ``superseded_by`` naming the new one);
  the extractor's ``CONTRADICT`` takes the same path. ``invalidate(id, at=T)`` ends a fact
  without a successor. Nothing is deleted by a change of fact.
- **transaction time**: when the cube recorded each version (``updated_at``; the next
  version's is when it retired it). A correction, ``update(id, text)``, is a new version of the
  same memory on this timeline only.

``search(as_of=T)`` reads the valid timeline (what was true at ``T``), ``search(known_at=T)``
the transaction timeline (the cube as recorded at ``T``); together, what the cube believed at
``known_at`` about ``as_of``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cubemem import access
from cubemem.errors import InvalidInputError
from cubemem.model import Filters, MemoryItem, MetadataValue, Status, validate_content
from cubemem.ops import inputs
from cubemem.ops.context import Context
from cubemem.ops.create import screened
from cubemem.ops.write import changed_fields, check_version, get, insert, revise
from cubemem.store.snapshot import matching


def recorded(
    ctx: Context, known_at: datetime, filters: Filters, as_of: datetime | None, ended: bool
) -> dict[str, MemoryItem]:
    """The versions current at ``known_at`` that ``filters`` allow (judged on those versions,
    expiry at ``known_at``), on the valid timeline: true at ``as_of`` when given, else not
    ended by ``known_at`` (unless ``ended``)."""
    versions = ctx.store.versions_at(known_at)
    allowed = set(matching(versions, filters, known_at))
    out = {}
    for item in versions:
        if item.id not in allowed:
            continue
        if as_of is not None and not item.valid_at(as_of):
            continue
        if as_of is None and not ended and item.valid_to is not None and item.valid_to <= known_at:
            continue
        out[item.id] = item
    return out


def succeed(
    ctx: Context,
    old: MemoryItem,
    fact: MemoryItem,
    at: datetime,
    changes: dict[str, Any] | None = None,
) -> MemoryItem:
    """A change in the world: ``fact`` (not yet stored) is true from ``at``, and ``old`` stays
    true until then — superseded by it, its history kept. ``old`` must still be at the version
    read (``ConflictError`` otherwise, nothing written: the caller decides again)."""
    if at <= old.valid_since:
        raise InvalidInputError(
            f"memory {old.id} is valid from {old.valid_since.isoformat()}; a change of fact "
            f"must come after that, not at {at.isoformat()} (to correct it, update it "
            "without valid_from)"
        )
    new = fact.model_copy(update={"valid_from": at, "parent_id": old.id})
    actor = access.current_actor()
    if actor is not None:  # an agent's successor is screened as any write of its is
        new = screened(actor, new.model_copy(update={"changed_by": actor.agent}))
    created = insert(ctx, [new])
    if new.status is Status.QUARANTINED:
        return created[0] if created else new  # held: the old fact stays current meanwhile
    revise(
        ctx,
        old.id,
        {
            "status": Status.SUPERSEDED,
            "superseded_by": new.id,
            "valid_to": at if old.valid_to is None else min(at, old.valid_to),
            **(changes or {}),
        },
        expected_version=old.version,
        reason="superseded",
    )
    return created[0] if created else new


def change_of_fact(
    ctx: Context,
    id: str,
    content: str | None,
    *,
    valid_from: datetime | str,
    tags: Sequence[str] | None = None,
    metadata: dict[str, MetadataValue] | None = None,
    scope: inputs.ScopeLike = None,
    expires_at: datetime | None = None,
    expected_version: int | None = None,
) -> MemoryItem:
    """``update(id, content, valid_from=T)``: the successor of ``id``, true from ``T`` — its
    text (default: the same), tags, metadata and scope as given, else as ``id``'s."""
    fields = changed_fields(tags=tags, metadata=metadata, scope=scope, expires_at=expires_at)
    at = inputs.moment(valid_from, "valid_from")
    assert at is not None
    old = get(ctx, id)
    check_version(old, inputs.expected_version(expected_version))
    if old.status is not Status.ACTIVE:
        raise InvalidInputError(
            f"memory {id} is {old.status.value}; only a current fact can change "
            "(search with include_superseded=True for its successor)"
        )
    text = (
        old.content
        if content is None
        else validate_content(content, ctx.settings.max_content_bytes)
    )
    successor = MemoryItem.model_validate(
        old.model_dump(
            exclude={
                "id",
                "version",
                "usage",
                "superseded_by",
                "merged_from",
                "decision",
                "decision_reason",
                "valid_to",
                "changed_by",
            }
        )
        | fields
        | {
            "content": text,
            "updated_at": ctx.clock(),
            "provenance": old.provenance.model_copy(update={"created_at": ctx.clock()}),
        }
    )
    return succeed(ctx, old, successor, at)


def invalidate(
    ctx: Context, id: str, at: datetime | str | None, expected_version: int | None = None
) -> MemoryItem:
    """End a fact's valid time at ``at`` (default: now) without a successor: a new version
    with ``valid_to``; it stops being current then, and stays findable ``as_of`` before."""
    moment = inputs.moment(at, "at") or ctx.clock()

    def apply(current: MemoryItem) -> dict[str, Any]:
        if current.status is Status.DELETED:
            raise InvalidInputError(f"memory {id} is deleted; restore it before invalidating")
        if moment <= current.valid_since:
            raise InvalidInputError(
                f"memory {id} is valid from {current.valid_since.isoformat()}; it cannot end "
                f"at {moment.isoformat()} (delete it if it was never true)"
            )
        return {"valid_to": moment}

    return revise(ctx, id, apply, expected_version=expected_version, reason="invalidated")
