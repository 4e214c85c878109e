"""Keyed memories: a key-value view of the cube (LangGraph's store is built on it).

A keyed memory's id is ``address_id(namespace, key)``, so every process agrees on it. ``put``
creates it or writes its next version (compare-and-set, retried on conflict: two puts both
land in the history, the later one current); ``refresh`` slides a TTL without a new version
and only where the row is still the version it read, so it can never undo a concurrent put.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from cubemem import access, limits
from cubemem.errors import ConflictError, InvalidInputError
from cubemem.model import Filters, MemoryItem, MetadataValue, Status, address_id, validate_content
from cubemem.ops import inputs
from cubemem.ops.context import Context
from cubemem.ops.create import new_item, room_for_held, screened
from cubemem.ops.redaction import redacted_fields
from cubemem.ops.write import MAX_RETRIES, backoff, held, insert, propose, reindex, revised
from cubemem.store.base import Embedding


def put(
    ctx: Context,
    namespace: Sequence[str],
    key: str,
    content: str,
    *,
    value: dict[str, Any] | None = None,
    scope: inputs.ScopeLike = None,
    tags: Sequence[str] | None = None,
    metadata: dict[str, MetadataValue] | None = None,
    ttl: timedelta | None = None,
) -> MemoryItem:
    labels = inputs.namespace(namespace)
    key = inputs.key(key)
    content = validate_content(content, ctx.settings.max_content_bytes)
    fields: dict[str, Any] = {
        "content": content,
        "namespace": labels,
        "key": key,
        "value": inputs.value_document(value),
        "scope": inputs.scope(scope),
        "tags": inputs.tags(tags),
        "metadata": inputs.metadata(metadata),
        "ttl": inputs.ttl(ttl),
    }
    fields = redacted_fields(ctx, fields)  # before anything is made of it
    content, labels, key = fields["content"], fields["namespace"], fields["key"]
    id_ = address_id(labels, key)
    vectors: dict[str, Embedding] = {}
    for attempt in range(MAX_RETRIES):
        now = ctx.clock()
        fields["expires_at"] = None if ttl is None else now + ttl
        current = ctx.store.get([id_])
        if not current:
            item = new_item(ctx, content, fields["scope"], fields["tags"], fields["metadata"])
            try:
                item = MemoryItem.model_validate(item.model_dump() | fields | {"id": id_})
            except ValidationError as exc:
                raise InvalidInputError(f"invalid memory: {exc.errors()[0]['msg']}") from None
            actor = access.current_actor()
            if actor is not None:  # screened with its value and namespace in place
                item = screened(actor, item)
            limits.item(item, ctx.settings.max_content_bytes)
            room_for_held(ctx, [item])
            if insert(ctx, [item]):
                return item
            backoff(attempt)  # another writer created it first: write over it as a new version
            continue
        old = current[0]
        wanted = fields | ({} if old.status is Status.QUARANTINED else {"status": Status.ACTIVE})
        if all(
            getattr(old, name) == value for name, value in wanted.items() if name != "expires_at"
        ):
            return (refresh(ctx, [old.id]) or [old])[0] if ttl is not None else old
        new = revised(ctx, old, wanted)
        if why := held(old, new):
            return propose(ctx, old, new, why)
        try:
            ctx.store.revise([(new, old.version)], reindex(ctx, [(old, new)], vectors))
        except ConflictError:
            backoff(attempt)
            continue
        ctx.working.changed([id_], "updated")
        return new
    raise ConflictError(f"key {key!r} in {labels} kept changing; nothing was written", [id_])


def lookup(ctx: Context, namespace: Sequence[str], key: str) -> MemoryItem | None:
    """The live memory stored under ``(namespace, key)``: None if absent, deleted or expired."""
    found = ctx.store.get([address_id(inputs.namespace(namespace), inputs.key(key))])
    if not found or found[0].status is not Status.ACTIVE:
        return None
    item = found[0]
    if item.expires_at is not None and item.expires_at <= ctx.clock():
        return None
    return item


def refresh(ctx: Context, ids: Sequence[str]) -> list[MemoryItem]:
    """Extend the lifetime of active memories with a ``ttl`` to now + ttl; returns those."""
    now = ctx.clock()
    renewed = {
        item.id: item.model_copy(update={"expires_at": now + item.ttl})
        for item in ctx.store.get(inputs.memory_ids(ids))
        if item.ttl is not None and item.status is Status.ACTIVE
    }
    changes = [(i.id, i.version, now + i.ttl) for i in renewed.values() if i.ttl is not None]
    done = set(ctx.store.extend(changes))
    return [item for id_, item in renewed.items() if id_ in done]


def namespaces(
    ctx: Context, prefix: Sequence[str] = (), *, filters: Filters | dict[str, Any] | None = None
) -> list[tuple[str, ...]]:
    """The distinct namespaces of live keyed memories under ``prefix``, sorted."""
    labels = inputs.namespace(tuple(prefix), allow_empty=True)
    parsed = Filters.parse(filters).model_copy(update={"namespace": labels})
    return ctx.store.namespaces(parsed, now=ctx.clock())
