"""``MemCubeStore``: a LangGraph ``BaseStore`` whose items are keyed memories of a MemCube.

Mapping (see docs/langchain.md):

- an item ``(namespace, key)`` is the memory ``cube.put(namespace, key, ...)`` — its id is
  ``cubemem.model.address_id(namespace, key)``; the item's ``value`` is kept whole and its
  text (the ``index`` fields) is what cubemem embeds and BM25-indexes;
- namespace labels set the memory's scope only as the application says (``scope=``): with
  ``scope=("{user}", "memories")`` (LangGraph's docs' layout) or ``scope=("memories",
  "{user}")`` (LangMem's) the item belongs to that user, so the middleware and tools bound to
  the user find it too; a namespace that does not fit is refused. Without ``scope`` items
  belong to no user (only their namespace finds them);
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

from cubemem import IncompatibleCubeError, InvalidInputError, MemoryItem, Scope
from cubemem.cube import CubeLike
from cubemem.embed import as_embedder

ScopeFromNamespace = Callable[[tuple[str, ...]], Scope | dict[str, str | None] | None]
SCOPE_FIELDS = ("user", "agent", "session")
PLACEHOLDERS = {"{" + field + "}": field for field in SCOPE_FIELDS}

USER_FIRST = ("{user}", "*")
"""``(user_id, "memories")``, ``(user_id, "preferences")``...: LangGraph's docs' layout."""
USER_SECOND = ("*", "{user}")
"""``("memories", user_id)``: LangMem's and the earlier cubemem default layout."""


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
        scope: How a namespace sets the memory's scope — chosen by the application, never
            guessed: a pattern of labels where ``"{user}"``, ``"{agent}"``, ``"{session}"``
            take that label as the scope field, ``"*"`` is any label and any other string must
            equal the label (``("{user}", "memories")``; ``USER_FIRST`` and ``USER_SECOND``
            are the two usual layouts); several patterns (the first that fits wins); or a
            function from the namespace to a scope (``None``: refuse it). A namespace no
            pattern fits is refused with ``InvalidInputError``. Default: no scope.
        ttl: LangGraph's ``TTLConfig`` (``default_ttl`` minutes, ``refresh_on_read``).
    """

    supports_ttl = True

    def __init__(
        self,
        cube: CubeLike,
        *,
        fields: Sequence[str] | None = None,
        scope: Sequence[str] | Sequence[Sequence[str]] | ScopeFromNamespace | None = None,
        ttl: TTLConfig | None = None,
        index: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(cube, CubeLike):
            raise TypeError(
                f"MemCubeStore needs a MemCube, AgentCube or RemoteCube, got {type(cube).__name__}"
            )
        self.cube = cube
        self.fields = None if fields is None else [str(f) for f in fields]
        self.scope: ScopeFromNamespace | None = None
        self.patterns: list[tuple[str, ...]] = []
        if callable(scope):
            self.scope = scope
        elif scope is not None:
            self.patterns = _patterns(scope)
        self.ttl_config = ttl
        if index is not None:
            self._check_index(index)

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

    def _check_index(self, index: dict[str, Any]) -> None:
        """LangGraph's ``index={"dims", "embed", "fields"}``: the cube embeds, so ``embed``
        must be the cube's own embedder (made with ``cubemem.embed.as_embedder``)."""
        unknown = sorted(set(index) - {"dims", "embed", "fields", "ann_index_config"})
        if unknown:
            raise TypeError(f"index takes dims, embed and fields; got unknown keys {unknown}")
        dims = index.get("dims")
        if dims is not None and dims != self.cube.manifest.dimension:
            raise IncompatibleCubeError(
                f"index dims={dims}, but cube {self.cube.name!r} holds vectors of dimension "
                f"{self.cube.manifest.dimension} from {self.cube.manifest.embedder!r}; create the "
                "cube with your embedder (MemCube.create(path, embedder=as_embedder(embed)))"
            )
        embed = index.get("embed")
        if embed is not None:
            name = as_embedder(embed, dimension=dims).name
            if name != self.cube.manifest.embedder:
                raise IncompatibleCubeError(
                    f"index embed is {name!r}, but cube {self.cube.name!r} was built with "
                    f"{self.cube.manifest.embedder!r}; create the cube with "
                    "MemCube.create(path, embedder=as_embedder(embed)) and pass the cube"
                )
        if index.get("fields") is not None and self.fields is None:
            self.fields = [str(f) for f in index["fields"]]

    def _scope_of(self, namespace: tuple[str, ...]) -> Scope | dict[str, str | None]:
        if self.scope is not None:
            scope = self.scope(namespace)
            if scope is None:
                raise InvalidInputError(
                    f"namespace {namespace!r} is refused by this store's scope function"
                )
            return scope
        if not self.patterns:
            return {}
        for pattern in self.patterns:
            scope = _fit(pattern, namespace)
            if scope is not None:
                return scope
        shown = " or ".join(repr(p) for p in self.patterns)
        raise InvalidInputError(
            f"namespace {namespace!r} does not fit this store's scope pattern {shown}; use a "
            "namespace of that shape, or give MemCubeStore a scope pattern that fits it"
        )


def _patterns(scope: Sequence[str] | Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    if isinstance(scope, str):
        raise TypeError(
            f"scope is a tuple of labels such as ('{{user}}', 'memories'); got {scope!r}"
        )
    items: list[Any] = list(scope)
    patterns: list[Any] = [items] if all(isinstance(p, str) for p in items) else items
    out: list[tuple[str, ...]] = []
    for pattern in patterns:
        if not isinstance(pattern, list | tuple) or not all(isinstance(x, str) for x in pattern):
            raise TypeError(
                f"scope pattern {pattern!r} must be a tuple of str labels, e.g. "
                "('{user}', 'memories'); None is no longer a position marker"
            )
        labels = tuple(pattern)
        fields = [PLACEHOLDERS[label] for label in labels if label in PLACEHOLDERS]
        bad = [label for label in labels if label.startswith("{") and label not in PLACEHOLDERS]
        if bad or not labels or len(fields) != len(set(fields)):
            raise ValueError(
                f"scope pattern {labels!r}: placeholders are {', '.join(PLACEHOLDERS)}, each at "
                "most once"
            )
        out.append(labels)
    return out


def _fit(pattern: tuple[str, ...], namespace: tuple[str, ...]) -> dict[str, str | None] | None:
    """The scope a namespace gets from ``pattern``, or None when it does not fit."""
    if len(namespace) < len(pattern):
        return None
    scope: dict[str, str | None] = {}
    for want, label in zip(pattern, namespace, strict=False):
        if want in PLACEHOLDERS:
            scope[PLACEHOLDERS[want]] = label
        elif want != "*" and want != label:
            return None
    return scope


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
