"""``MemCubeStore``: a LangGraph ``BaseStore`` whose items are keyed memories of a MemCube.

Mapping (see docs/langchain.md):

- an item ``(namespace, key)`` is the memory ``cube.put(namespace, key, ...)`` — its id is
  ``cubemem.model.address_id(namespace, key)``; the item's ``value`` is kept whole and its
  text (the ``index`` fields) is what cubemem embeds and BM25-indexes;
- namespace labels also set the memory's scope: by default ``("memories", user_id, ...)``
  scopes it to that user, so the middleware and tools for that user find it too;
- ``put`` of an existing key writes a new version (``cube.history`` keeps the old value);
  ``delete`` is cubemem's soft delete, so ``cube.restore`` can undo it;
- ``ttl`` (minutes) becomes a sliding expiry; reads refresh it unless told otherwise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from cubemem import MemCube, MemoryItem, Scope

ScopeFromNamespace = Callable[[tuple[str, ...]], Scope | dict[str, str | None]]
SCOPE_FIELDS = ("user", "agent", "session")


class MemCubeStore(BaseStore):
    """A durable, versioned LangGraph store with hybrid semantic search, over one MemCube.

    ```python
    store = MemCubeStore(MemCube.open("./memory"))
    agent = create_agent(model, tools, store=store)
    ```

    Args:
        cube: The cube that holds the items.
        fields: Which parts of a value are indexed for ``search(query=...)`` (LangGraph path
            syntax, e.g. ``["text", "facts[*]"]``; ``"$"`` is the whole value as JSON). By
            default every top-level string field, or the JSON when there is none. A put's own
            ``index=[...]`` overrides this; ``index=False`` indexes the JSON of the value (every
            cubemem memory is searchable).
        scope: How a namespace sets the memory's scope: a tuple naming the scope field of each
            label position (default ``(None, "user")``: the second label is the user), or a
            function from the namespace to a scope.
        ttl: LangGraph's ``TTLConfig`` (``default_ttl`` minutes, ``refresh_on_read``).
    """

    supports_ttl = True

    def __init__(
        self,
        cube: MemCube,
        *,
        fields: Sequence[str] | None = None,
        scope: Sequence[str | None] | ScopeFromNamespace = (None, "user"),
        ttl: TTLConfig | None = None,
    ) -> None:
        if not isinstance(cube, MemCube):
            raise TypeError(f"MemCubeStore needs a MemCube, got {type(cube).__name__}")
        if not callable(scope):
            unknown = [f for f in scope if f is not None and f not in SCOPE_FIELDS]
            if unknown:
                raise ValueError(f"scope fields must be one of {SCOPE_FIELDS} or None: {unknown}")
        self.cube = cube
        self.fields = None if fields is None else [str(f) for f in fields]
        self.scope = scope
        self.ttl_config = ttl

    # -- BaseStore ------------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return [self._run(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        return await asyncio.to_thread(self.batch, ops)

    def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return self._get(op)
        if isinstance(op, PutOp):
            self._put(op)
            return None
        if isinstance(op, SearchOp):
            return self._search(op)
        if isinstance(op, ListNamespacesOp):
            return self._list_namespaces(op)
        raise ValueError(f"unknown store operation {type(op).__name__}")

    # -- operations -----------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        item = self.cube.lookup(op.namespace, op.key)
        if item is None:
            return None
        if op.refresh_ttl and item.ttl is not None:
            item = self.cube.refresh([item.id])[0]
        return _item(item)

    def _put(self, op: PutOp) -> None:
        if op.value is None:
            current = self.cube.lookup(op.namespace, op.key)
            if current is not None:
                self.cube.delete(current.id)
            return
        self.cube.put(
            op.namespace,
            op.key,
            self._text(dict(op.value), op.index),
            value=dict(op.value),
            scope=self._scope_of(op.namespace),
            ttl=None if op.ttl is None else timedelta(minutes=op.ttl),
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit <= 0 or op.offset < 0:
            return []
        filters = {"namespace": op.namespace_prefix, "value": op.filter or {}}
        if op.query:
            results = self.cube.search(op.query, k=op.offset + op.limit, filters=filters)
            found: list[tuple[MemoryItem, float | None]] = [
                (r.item, r.score) for r in results[op.offset :]
            ]
        else:
            items = self.cube.list(filters, limit=op.limit, offset=op.offset)
            found = [(item, None) for item in items]
        if op.refresh_ttl:
            renewed = {i.id: i for i in self.cube.refresh([i.id for i, _ in found if i.ttl])}
            found = [(renewed.get(i.id, i), score) for i, score in found]
        return [_search_item(item, score) for item, score in found]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = self.cube.namespaces(_literal_prefix(op.match_conditions))
        if op.match_conditions:
            namespaces = [
                ns for ns in namespaces if all(_matches(c, ns) for c in op.match_conditions)
            ]
        if op.max_depth is not None:
            namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
        return namespaces[op.offset : op.offset + op.limit]

    # -- translation ----------------------------------------------------------------------
    def _text(self, value: dict[str, Any], index: Sequence[str] | bool | None) -> str:
        if index is False:
            paths: Sequence[str] = ["$"]
        elif index is None or index is True:
            paths = self.fields if self.fields is not None else []
        else:
            paths = list(index)
        if paths:
            texts = [t for path in paths for t in get_text_at_path(value, tokenize_path(path))]
        else:
            texts = [v for v in value.values() if isinstance(v, str) and v.strip()]
        texts = [t for t in texts if t.strip()]
        return "\n".join(texts) if texts else json.dumps(value, sort_keys=True, ensure_ascii=False)

    def _scope_of(self, namespace: tuple[str, ...]) -> Scope | dict[str, str | None]:
        if callable(self.scope):
            return self.scope(namespace)
        return {
            field: label
            for field, label in zip(self.scope, namespace, strict=False)
            if field is not None
        }


def _item(item: MemoryItem) -> Item:
    return Item(
        value=dict(item.value or {}),
        key=item.key or item.id,
        namespace=tuple(item.namespace or ()),
        created_at=item.provenance.created_at,
        updated_at=item.updated_at,
    )


def _search_item(item: MemoryItem, score: float | None) -> SearchItem:
    return SearchItem(
        namespace=tuple(item.namespace or ()),
        key=item.key or item.id,
        value=dict(item.value or {}),
        created_at=item.provenance.created_at,
        updated_at=item.updated_at,
        score=score,
    )


def _literal_prefix(conditions: Sequence[MatchCondition] | None) -> tuple[str, ...]:
    """The labels every match must start with, to narrow the query before matching."""
    for condition in conditions or ():
        if condition.match_type == "prefix":
            labels = []
            for label in condition.path:
                if label == "*":
                    break
                labels.append(label)
            return tuple(labels)
    return ()


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise ValueError(f"unsupported namespace match type {condition.match_type!r}")
    return all(want == "*" or label == want for label, want in pairs)
