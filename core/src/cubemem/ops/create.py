"""New memories before they are stored: items from texts or ``MemoryInput``s, turns from
messages (screened for the acting agent, validated within the limits), and the ids an
idempotency key derives."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cubemem import access, limits
from cubemem.errors import ConflictError, HeldLimitError, InvalidInputError
from cubemem.model import (
    Filters,
    MemoryInput,
    MemoryItem,
    Message,
    MetadataValue,
    Provenance,
    Scope,
    Status,
    address_id,
    check_json,
    validate_content,
    validate_model,
)
from cubemem.ops import inputs
from cubemem.ops.context import Context
from cubemem.ops.redaction import redacted


def new_item(
    ctx: Context,
    raw: Any,
    scope: Scope,
    tags: list[str],
    metadata: dict[str, MetadataValue],
    source: str = "api",
    valid: tuple[datetime | None, datetime | None] = (None, None),
) -> MemoryItem:
    """A validated, not yet stored memory of ``raw`` (a str, ``MemoryInput`` or its dict).

    Both its timelines start now (the cube's clock): it is recorded now, and true in the world
    from ``valid_from`` — given, else when it occurred, else now — until ``valid_to``."""
    given = inputs.memory_input(raw)
    now = ctx.clock()
    valid_from, valid_to = inputs.valid_window(
        given.valid_from or valid[0], given.valid_to or valid[1]
    )
    valid_from = valid_from or given.occurred_at or now
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInputError(
            f"valid_to ({valid_to.isoformat()}) must be after valid_from "
            f"({valid_from.isoformat()}, when the memory occurred unless given)"
        )
    content = validate_content(given.content, ctx.settings.max_content_bytes)
    merged_metadata = {**metadata, **given.metadata}
    check_json(merged_metadata)
    item_scope = given.scope or scope
    actor = access.current_actor()
    author, trust = item_scope.agent, given.trust
    if actor is not None:  # written for an agent: stamped, fenced to its grant, screened
        item_scope = access.fit_scope(item_scope, actor.scope)
        author, trust = actor.agent, min(given.trust, actor.trust)
    try:
        item = MemoryItem(
            cube=ctx.cube_id,
            content=content,
            scope=item_scope,
            provenance=Provenance(
                source=source,
                author_agent=author,
                source_ids=given.source_ids,
                trust=trust,
                speaker=given.speaker,
                occurred_at=given.occurred_at,
                created_at=now,
            ),
            tags=[*tags, *given.tags],
            metadata=merged_metadata,
            expires_at=given.expires_at,
            context=given.context,
            changed_by=None if actor is None else actor.agent,
            updated_at=now,
            valid_from=valid_from,
            valid_to=valid_to,
        )
    except ValidationError as exc:
        raise InvalidInputError(f"invalid memory: {exc.errors()[0]['msg']}") from None
    item = redacted(ctx, item)  # before it is queued, embedded or screened
    if actor is not None:
        item = screened(actor, item)
    return limits.item(item, ctx.settings.max_content_bytes)


def flags(actor: access.Actor, item: MemoryItem) -> list[str]:
    """What the screen finds in the fields of ``item`` a prompt may show ([] for a cube
    admin, whose writes are not screened)."""
    if not actor.screen:
        return []
    metadata = {
        k: v for k, v in item.metadata.items() if k not in (access.FLAG_KEY, access.PROPOSAL_KEY)
    }
    return access.screen_fields(
        item.content,
        speaker=item.provenance.speaker,
        context=item.context,
        tags=item.tags,
        metadata=metadata,
        value=item.value,
    )


def screened(actor: access.Actor, item: MemoryItem) -> MemoryItem:
    """``item`` as a write by ``actor`` stores it: quarantined when the actor's trust is below
    the cube's threshold or the screen flags a field, with the screen's reasons in its
    metadata (a writer never sets that key itself)."""
    keep = item.provenance.source == "proposal"  # the write layer's own record of a change
    metadata = {
        k: v
        for k, v in item.metadata.items()
        if k != access.FLAG_KEY and (keep or k != access.PROPOSAL_KEY)
    }
    reasons = flags(actor, item)
    if reasons:
        metadata[access.FLAG_KEY] = "; ".join(reasons)
    status = Status.QUARANTINED if reasons or actor.quarantine else Status.ACTIVE
    return item.model_copy(update={"status": status, "metadata": metadata})


def room_for_held(ctx: Context, items: Sequence[MemoryItem]) -> None:
    """Refuse (``HeldLimitError``) a write by an agent that would leave it more than
    ``Settings.max_held_per_agent`` memories and proposed changes held for review in the cube:
    a low-trust agent cannot flood the review queue. Called before anything is queued or
    stored; writes no agent makes are never held."""
    actor = access.current_actor()
    adding = sum(1 for i in items if i.status is Status.QUARANTINED)
    if actor is None or not adding:
        return
    cap = ctx.settings.max_held_per_agent
    held, offset, page = 0, 0, 2000
    wanted = Filters(status=[Status.QUARANTINED], include_expired=True)
    while batch := ctx.store.select(wanted, now=ctx.clock(), limit=page, offset=offset):
        held += sum(1 for i in batch if (i.changed_by or i.provenance.author_agent) == actor.agent)
        offset += page
    if held + adding > cap:
        raise HeldLimitError(
            f"agent {actor.agent!r} has {held} writes held for review in this cube and "
            f"{adding} more would pass the cap of {cap} (Settings.max_held_per_agent); nothing "
            "was written. An admin approves or rejects held writes first (cube.approve, "
            "cube.reject, the inspector's review page)",
            retry_after=60.0,
        )


def new_items(
    ctx: Context,
    contents: Sequence[Any],
    *,
    scope: inputs.ScopeLike = None,
    tags: Sequence[str] | None = None,
    metadata: dict[str, MetadataValue] | None = None,
    valid_from: datetime | str | None = None,
    valid_to: datetime | str | None = None,
) -> list[MemoryItem]:
    """Validate every input first, so one bad one stores none."""
    base_scope, base_tags, base_metadata = (
        inputs.scope(scope),
        inputs.tags(tags),
        inputs.metadata(metadata),
    )
    valid = inputs.valid_window(valid_from, valid_to)
    return [new_item(ctx, x, base_scope, base_tags, base_metadata, valid=valid) for x in contents]


def new_turns(
    ctx: Context,
    messages: Sequence[Any],
    *,
    session: str | None = None,
    timestamp: datetime | str | None = None,
    scope: inputs.ScopeLike = None,
    tags: Sequence[str] | None = None,
    metadata: dict[str, MetadataValue] | None = None,
) -> list[MemoryItem]:
    """Conversation turns as raw memories: speaker, time and message id kept. A turn with a
    message id gets the memory id ``turn_id(scope, message id)``: the same message sent again
    is the same memory (``MemCube.add_messages`` stores it once)."""
    turns = [validate_model(Message, m) for m in inputs.as_list(messages, "messages")]
    ids = [t.id for t in turns if t.id]
    if len(ids) != len(set(ids)):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInputError(f"message id {twice!r} appears twice in one call; ids are unique")
    base = inputs.scope(scope)
    session_scope = base.model_copy(update={"session": session}) if session else base
    when = inputs.timestamp(timestamp)
    base_tags, base_metadata = inputs.tags(tags), inputs.metadata(metadata)
    made = [
        new_item(
            ctx,
            MemoryInput(
                content=turn.content,
                scope=session_scope,
                metadata={**base_metadata, **turn.metadata},
                source_ids=[turn.id] if turn.id else [],
                speaker=turn.speaker,
                occurred_at=turn.timestamp or when,
            ),
            session_scope,
            base_tags,
            {},
            "message",
        )
        for turn in turns
    ]
    return [
        item.model_copy(update={"id": turn_id(item.scope, turn.id)}) if turn.id else item
        for item, turn in zip(made, turns, strict=True)
    ]


_TURN_NAMESPACE = uuid.UUID("6f1d3c2a-8b4e-4f7a-9c05-d2e8a1b37f60")


def turn_id(scope: Scope, message_id: str) -> str:
    """The memory id of message ``message_id`` in ``scope`` (its user, agent and session):
    the same in every process and on every retry."""
    owner = [scope.user, scope.agent, scope.session, message_id]
    return uuid.uuid5(_TURN_NAMESPACE, json.dumps(owner)).hex


def idempotent(
    ctx: Context,
    items: list[MemoryItem],
    key: str,
    queued: Callable[[list[str]], list[MemoryItem]] | None = None,
) -> tuple[list[MemoryItem], bool]:
    """``items`` with ids derived from ``key`` (the same on every retry), and whether a call
    with that key already stored or queued them (then those items are returned). ``queued``:
    the items of these ids acknowledged but not stored yet (a background write's)."""
    limits.text(key, "idempotency_key", max_chars=limits.MAX_ID_CHARS)
    if not key.strip():
        raise InvalidInputError("idempotency_key is empty; give a key unique to this call")
    keyed = [
        item.model_copy(update={"id": address_id(("idempotency", ctx.cube_id), f"{key}#{n}")})
        for n, item in enumerate(items)
    ]
    stored = {i.id: i for i in ctx.store.get([i.id for i in keyed])}
    if queued is not None and len(stored) < len(keyed):  # other content under it: a 409 too
        waiting = queued([i.id for i in keyed if i.id not in stored])
        stored = {i.id: i for i in waiting} | stored
    if not stored:
        return keyed, False
    same = all(_first(ctx, stored[i.id]) == (i.content, i.scope) for i in keyed if i.id in stored)
    if not same:
        raise ConflictError(
            f"idempotency_key {key!r} was used for other content or another scope; use a new "
            "key for a new write",
            [i.id for i in keyed],
        )
    if len(stored) < len(keyed):  # an earlier attempt stopped part way: finish it
        return keyed, False
    return [stored[i.id] for i in keyed], True


def _first(ctx: Context, item: MemoryItem) -> tuple[str, Scope]:
    """The text and scope a memory was created with (a later update does not make a retry
    conflict)."""
    if item.version > 1 and (versions := ctx.store.versions(item.id)):
        return versions[0].content, versions[0].scope
    return item.content, item.scope
