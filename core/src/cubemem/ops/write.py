"""Writing memories: new ones, new versions of old ones, status changes.

Every read-modify-write here names the version it read, and the store refuses a stale one
(``ConflictError``). Without an ``expected_version`` an operation re-reads and applies its
change again (last writer wins, and both versions stay in the history); with one, the caller
gets the conflict. Vectors are computed before the transaction and written in it, so a row
never holds the vector of another version's text.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cubemem import access, limits
from cubemem.errors import ConflictError, InvalidInputError, NotFoundError
from cubemem.index_texts import dense_texts, digest
from cubemem.model import (
    TIER_KEY,
    Kind,
    MemoryItem,
    MetadataValue,
    Provenance,
    Status,
    validate_content,
)
from cubemem.ops import inputs
from cubemem.ops.context import Context
from cubemem.ops.create import flags, room_for_held, screened
from cubemem.ops.redaction import redacted
from cubemem.store.base import Embedding

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
Changes = dict[str, Any] | Callable[[MemoryItem], dict[str, Any]]
"""Fields to change, or a function of the current row that returns them (re-run on retry)."""

MAX_RETRIES = 50
"""Re-reads before a write without ``expected_version`` gives up under constant contention."""


# -- storing --------------------------------------------------------------------------------
def insert(
    ctx: Context,
    items: Sequence[MemoryItem],
    *,
    history: Sequence[MemoryItem] = (),
    embeddings: dict[str, Embedding] | None = None,
    progress: Progress | None = None,
) -> list[MemoryItem]:
    """Store new memories: embed everything first (a bad vector writes nothing), then write in
    batches. Ids already stored are skipped (a redelivered task is harmless); returns the
    items this call created. They become hot in their writer's working memory."""
    if not items:
        return []
    if embeddings is None:  # embed only what is not stored yet (a redelivery embeds nothing)
        present = {i.id for i in ctx.store.get([i.id for i in items])}
        embeddings = ctx.embed([i for i in items if i.id not in present])
    batch = max(ctx.settings.embed_batch_size * 4, 256)
    by_id: dict[str, list[MemoryItem]] = {}
    for version in history:
        by_id.setdefault(version.id, []).append(version)
    created: set[str] = set()
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        created.update(
            ctx.store.insert(
                chunk,
                {i.id: embeddings[i.id] for i in chunk if i.id in embeddings},
                [v for i in chunk for v in by_id.get(i.id, [])],
            )
        )
        if progress is not None:
            progress(len(chunk))
    stored = [i for i in {i.id: i for i in items}.values() if i.id in created]
    heat: dict[tuple[str | None, str | None], list[tuple[str, float]]] = {}
    for item in stored:
        heat.setdefault((item.scope.agent, item.scope.session), []).append((item.id, 1.0))
    for key, hits in heat.items():
        ctx.working.record(key, hits)
    return stored


def get(ctx: Context, id: str) -> MemoryItem:
    found = ctx.store.get([inputs.memory_id(id)])
    if not found:
        raise NotFoundError(f"no memory {id!r} in cube {ctx.name!r}")
    return found[0]


def revised(ctx: Context, item: MemoryItem, changes: dict[str, Any]) -> MemoryItem:
    """``item`` with ``changes`` applied as its next version (validated). Made for an agent
    (``access.acting``), the version names it; a held memory its writer edits stays held (and
    is screened again), and a cube admin's edit of one is its review."""
    actor = access.current_actor()
    try:
        data = (
            item.model_dump()
            | changes
            | {
                "version": item.version + 1,
                "updated_at": ctx.clock(),
                "changed_by": None if actor is None else actor.agent,
            }
        )
        new = redacted(ctx, MemoryItem.model_validate(data))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid update: {exc.errors()[0]['msg']}") from None
    if actor is not None and item.status is Status.QUARANTINED and new.status is item.status:
        new = screened(actor, new)  # an admin: published; else held while it needs to be
    return limits.item(new, ctx.settings.max_content_bytes)


_PROPOSED = (
    "content", "kind", "scope", "status", "tags", "metadata", "expires_at", "context", "value",
    "ttl", "valid_from", "valid_to",
)  # fmt: skip
"""The fields a held change may carry; the rest of a version is the store's bookkeeping."""


def held(old: MemoryItem, new: MemoryItem) -> list[str]:
    """Why changing ``old`` into ``new`` for the acting agent must wait for review ([] when
    it applies now): any change other agents would see, by an agent whose trust is below the
    cube's threshold; text the screen flags, by one that does not administer the cube. An
    agent's own memory still waiting for review is changed in place (nobody else sees it)."""
    actor = access.current_actor()
    if actor is None or not (actor.quarantine or actor.screen):
        return []
    if old.status is Status.QUARANTINED and author(old) == actor.agent:
        return []
    if actor.quarantine and any(getattr(old, f) != getattr(new, f) for f in _PROPOSED):
        return [f"trust {actor.trust:.2g} is below the cube's threshold"]
    published = new.status is Status.ACTIVE and (
        old.status is not Status.ACTIVE
        or any(getattr(old, f) != getattr(new, f) for f in _PROPOSED if f != "status")
    )
    return flags(actor, new) if published else []


def author(item: MemoryItem) -> str | None:
    """The agent whose write this version is."""
    return item.changed_by or item.provenance.author_agent


def propose(ctx: Context, old: MemoryItem, new: MemoryItem, reasons: list[str]) -> MemoryItem:
    """Hold the change of ``old`` into ``new`` for review: ``old`` stays as every reader
    sees it, and a quarantined memory (the proposal, written by the acting agent) carries the
    change — its text is the proposed text, ``metadata[PROPOSAL_KEY]`` names the memory, the
    version it was made against and the other fields it sets. Approving it applies the change
    (``cubemem.ops.review``); rejecting it drops it."""
    actor = access.current_actor()
    assert actor is not None, "only a change made for an agent is held"
    changed = [f for f in _PROPOSED if getattr(old, f) != getattr(new, f)]
    dumped = new.model_dump(mode="json", include=set(changed) - {"content", "value"})
    record = {"target": old.id, "version": old.version, "changes": dumped}
    record |= {"content": "content" in changed, "value": "value" in changed}
    try:
        proposal = MemoryItem(
            cube=ctx.cube_id,
            content=new.content,
            scope=old.scope,
            provenance=Provenance(
                source="proposal", author_agent=actor.agent, source_ids=[old.id], trust=actor.trust
            ),
            status=Status.QUARANTINED,
            tags=new.tags,
            metadata={access.PROPOSAL_KEY: json.dumps(record, sort_keys=True)},
            context=new.context,
            value=new.value,
            changed_by=actor.agent,
            decision_reason=f"held: {'; '.join(reasons)}",
        )
    except ValidationError as exc:
        raise InvalidInputError(f"invalid update: {exc.errors()[0]['msg']}") from None
    proposal = screened(actor, proposal).model_copy(update={"status": Status.QUARANTINED})
    room_for_held(ctx, [proposal])
    insert(ctx, [limits.item(proposal, ctx.settings.max_content_bytes)])
    return proposal


def proposal_of(item: MemoryItem) -> dict[str, Any] | None:
    """The held change ``item`` carries (``propose``), or None for an ordinary memory."""
    raw = item.metadata.get(access.PROPOSAL_KEY)
    if item.provenance.source != "proposal" or not isinstance(raw, str):
        return None
    record = json.loads(raw)
    return record if isinstance(record, dict) else None


def reindex(
    ctx: Context,
    pairs: Sequence[tuple[MemoryItem, MemoryItem]],
    cache: dict[str, Embedding] | None = None,
) -> dict[str, Embedding]:
    """Vectors for those (old, new) pairs whose indexed text changed; the others keep theirs.

    ``cache`` (by text digest) keeps a retry after a conflict from embedding the same text
    again, which keeps the window between reading a row and writing it short."""
    cache = {} if cache is None else cache
    changed = {
        new.id: (new, key)
        for old, new in pairs
        if (key := digest(dense_texts(new))) != digest(dense_texts(old))
    }
    missing = [new for new, key in changed.values() if key not in cache]
    for embedding in ctx.embed(missing).values():
        cache[embedding.digest] = embedding
    return {id_: cache[key] for id_, (_, key) in changed.items()}


def check_version(item: MemoryItem, expected: int | None, done: str = "written") -> None:
    """``ConflictError`` when ``item`` moved past the version the caller expects."""
    if expected is not None and item.version != expected:
        raise ConflictError(
            f"memory {item.id} is at version {item.version}, not {expected}; nothing was "
            f"{done}. Read it again and decide",
            [item.id],
        )


def backoff(attempt: int) -> None:
    """A short jittered pause before re-reading a row another writer just changed."""
    time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))


def revise(
    ctx: Context,
    id: str,
    changes: Changes,
    *,
    expected_version: int | None = None,
    reason: str = "updated",
) -> MemoryItem:
    """Write the next version of one memory; see the module docstring for conflicts."""
    expected_version = inputs.expected_version(expected_version)
    vectors: dict[str, Embedding] = {}
    for attempt in range(MAX_RETRIES):
        current = get(ctx, id)
        check_version(current, expected_version)
        wanted = changes(current) if callable(changes) else changes
        new = revised(ctx, current, wanted)
        if why := held(current, new):
            return propose(ctx, current, new, why)
        try:
            ctx.store.revise([(new, current.version)], reindex(ctx, [(current, new)], vectors))
        except ConflictError:
            if expected_version is not None:
                raise
            log.debug("memory %s changed under a revision; reading it again", id)
            backoff(attempt)
            continue
        ctx.working.changed([id], reason)
        return new
    raise ConflictError(
        f"memory {id} kept changing under {MAX_RETRIES} attempts to revise it; nothing was "
        "written. Retry later",
        [id],
    )


def revise_many(
    ctx: Context, revisions: Sequence[tuple[MemoryItem, int]], embeddings: dict[str, Embedding]
) -> list[str]:
    """Compare-and-set many rows, each on its own: the stale ones are left out (a sweep decides
    again next time). Returns the ids that changed."""
    pending = list(revisions)
    while pending:
        try:
            ctx.store.revise(
                pending, {i.id: embeddings[i.id] for i, _ in pending if i.id in embeddings}
            )
        except ConflictError as exc:
            stale = set(exc.ids)
            if not stale or not any(i.id in stale for i, _ in pending):
                raise
            pending = [(i, v) for i, v in pending if i.id not in stale]
            continue
        break
    return [i.id for i, _ in pending]


def update(
    ctx: Context,
    id: str,
    content: str | None = None,
    *,
    tags: Sequence[str] | None = None,
    metadata: dict[str, MetadataValue] | None = None,
    scope: inputs.ScopeLike = None,
    expires_at: datetime | None = None,
    expected_version: int | None = None,
) -> MemoryItem:
    changes = changed_fields(tags=tags, metadata=metadata, scope=scope, expires_at=expires_at)
    if content is not None:
        changes["content"] = validate_content(content, ctx.settings.max_content_bytes)
    if not changes:
        raise InvalidInputError(
            f"update of {id} changes nothing; pass content, tags, metadata, scope or expires_at"
        )

    def apply(current: MemoryItem) -> dict[str, Any]:
        if current.status is Status.DELETED:
            raise InvalidInputError(f"memory {id} is deleted; restore it before updating")
        return changes

    return revise(ctx, id, apply, expected_version=expected_version)


def changed_fields(
    *,
    tags: Sequence[str] | None = None,
    metadata: dict[str, MetadataValue] | None = None,
    scope: inputs.ScopeLike = None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """The fields an update sets besides its text, checked."""
    changes: dict[str, Any] = {}
    if tags is not None:
        changes["tags"] = inputs.tags(tags)
    if metadata is not None:
        changes["metadata"] = inputs.metadata(metadata)
    if scope is not None:
        changes["scope"] = inputs.scope(scope)
    if expires_at is not None:
        if not isinstance(expires_at, datetime):
            raise InvalidInputError(f"expires_at must be a datetime, got {expires_at!r}")
        changes["expires_at"] = expires_at
    return changes


def set_status(
    ctx: Context, id: str, status: Status, *, expected_version: int | None = None
) -> MemoryItem:
    """A new version with another status (delete, restore); no version if it already has it."""
    current = get(ctx, id)
    if current.status is status and expected_version in (None, current.version):
        return current
    reason = "deleted" if status is not Status.ACTIVE else "updated"
    return revise(ctx, id, {"status": status}, expected_version=expected_version, reason=reason)


def set_kind(
    ctx: Context,
    id: str,
    kind: Kind | str,
    *,
    note: str | None = None,
    expected_version: int | None = None,
) -> MemoryItem:
    """A new version in another kind of memory (plaintext, activation, parametric): the text
    stays, searchable; ``note`` (why it moved) goes in ``metadata["cubemem_tier"]``. No new
    version if it already is that kind."""
    if not isinstance(kind, Kind):
        try:
            kind = Kind(kind)
        except ValueError:
            raise InvalidInputError(
                f"kind must be one of {[k.value for k in Kind]}, got {kind!r}"
            ) from None
    if note is not None:
        note = limits.text(note, "note")

    def apply(current: MemoryItem) -> dict[str, Any]:
        if current.status is Status.DELETED:
            raise InvalidInputError(f"memory {id} is deleted; restore it before moving it")
        changes: dict[str, Any] = {"kind": kind}
        if note is not None:
            changes["metadata"] = {**current.metadata, TIER_KEY: note}
        return changes

    current = get(ctx, id)
    if current.kind is kind and expected_version in (None, current.version):
        return current
    return revise(ctx, id, apply, expected_version=expected_version, reason="moved")


def purge(ctx: Context, id: str, *, expected_version: int | None = None) -> None:
    """Erase a memory, its history and its vector for good."""
    current = get(ctx, id)
    check_version(current, inputs.expected_version(expected_version), "erased")
    ctx.store.purge([current.id])
    ctx.working.changed([id], "deleted")
