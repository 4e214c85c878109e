"""``MemCubeRetriever``: cubemem's hybrid search as a LlamaIndex ``BaseRetriever``."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, cast

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from cubemem import Filters, InvalidFilterError, InvalidInputError, SearchResult
from cubemem.cube import CubeLike
from cubemem.ops.inputs import moment
from cubemem.ops.read import check_min_score

SCOPE_KEYS = ("user", "agent", "session")
_METADATA_OPERATORS = {
    FilterOperator.EQ: None,
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}


class MemCubeRetriever(BaseRetriever):
    """Retrieve memories as ``NodeWithScore(TextNode)``: node id = memory id, score = fused score.

    ```python
    retriever = MemCubeRetriever(cube, similarity_top_k=5, filters={"user": "ana"})
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    ```

    ``filters`` is either cubemem's filters (a dict or ``Filters``) or LlamaIndex
    ``MetadataFilters``, mapped by ``to_cubemem_filters``; they bind every search of this
    retriever (make another retriever for other filters). ``min_score`` (0 to 1) drops results
    whose ``relevance`` is lower. ``as_of`` retrieves what was true at a moment, ``known_at``
    what the cube held at one (``MemCube.search``). An unknown keyword (``filter=``,
    ``search_kwargs=``, ...) raises ``TypeError`` naming the accepted ones.
    """

    def __init__(
        self,
        cube: CubeLike,
        similarity_top_k: int = 4,
        filters: MetadataFilters | Filters | dict[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        *,
        min_score: float | None = None,
        as_of: datetime | str | None = None,
        known_at: datetime | str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(
                f"MemCubeRetriever got unexpected argument(s) {sorted(kwargs)}; it takes cube, "
                "similarity_top_k, filters, min_score, as_of, known_at, callback_manager, "
                "verbose (filters are "
                'cubemem filters such as {"user": "ana"} or LlamaIndex MetadataFilters)'
            )
        if not isinstance(cube, CubeLike):
            raise InvalidInputError(
                f"MemCubeRetriever needs a MemCube, AgentCube or RemoteCube, got "
                f"{type(cube).__name__}"
            )
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int):
            raise ValueError(f"similarity_top_k must be an int, got {similarity_top_k!r}")
        if similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be positive, got {similarity_top_k}")
        self.cube = cube
        self.similarity_top_k = similarity_top_k
        try:
            self.filters: Filters | None = _translate(filters)
        except _Unsatisfiable:
            self.filters = None  # AND-ed conditions no memory meets: every search is empty
        self.min_score = check_min_score(min_score) if min_score is not None else None
        self.as_of = moment(as_of, "as_of")
        self.known_at = moment(known_at, "known_at")
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.filters is None:
            return []
        results = self.cube.search(
            query_bundle.query_str,
            k=self.similarity_top_k,
            filters=self.filters,
            min_score=self.min_score,
            as_of=self.as_of,
            known_at=self.known_at,
        )
        return [to_node(r) for r in results]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


def to_node(result: SearchResult) -> NodeWithScore:
    """A search result as a scored ``TextNode``; the LLM sees the text and when it was said."""
    item = result.item
    metadata = {
        "scope": item.scope.model_dump(mode="json"),
        "provenance": item.provenance.model_dump(mode="json"),
        "version": item.version,
        "relevance": result.relevance,
        "created_at": item.provenance.created_at.isoformat(),
        "valid_from": item.valid_since.isoformat(),
        "valid_to": None if item.valid_to is None else item.valid_to.isoformat(),
        "tags": list(item.tags),
        "metadata": dict(item.metadata),
    }
    hidden = [key for key in metadata if key != "created_at"]
    node = TextNode(
        id_=item.id,
        text=item.content,
        metadata=metadata,
        excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=list(metadata),
    )
    return NodeWithScore(node=node, score=result.score)


class _Unsatisfiable(Exception):
    """AND-ed conditions that no memory can meet (``user == ana AND user == bob``)."""


def to_cubemem_filters(filters: MetadataFilters | Filters | dict[str, Any] | None) -> Filters:
    """Map LlamaIndex ``MetadataFilters`` onto cubemem ``Filters``.

    ``user``/``agent``/``session``/``kind`` keys take ``==``; ``tags`` takes ``==``/``contains``
    (one tag) or ``all``; ``event_time`` takes ``>=`` (after) and ``<`` (before); any other key is
    a memory metadata field with ``== != > >= < <= in nin``. Conditions must be AND; anything else
    raises ``InvalidFilterError`` naming what is supported. A key given twice keeps both
    conditions (AND): ``user == ana AND user == bob`` can match nothing, and raises
    ``InvalidFilterError`` here (``MemCubeRetriever`` returns no results for it instead).
    """
    try:
        return _translate(filters)
    except _Unsatisfiable as exc:
        raise InvalidFilterError(f"these filters can never match: {exc}") from None


def _translate(filters: MetadataFilters | Filters | dict[str, Any] | None) -> Filters:
    if not isinstance(filters, MetadataFilters):
        return Filters.parse(filters)
    spec: dict[str, Any] = {"tags": [], "metadata": {}}
    for item in _flatten(filters):
        _apply(item, spec)
    return Filters.parse({k: v for k, v in spec.items() if v or k in SCOPE_KEYS})


def _flatten(filters: MetadataFilters) -> list[MetadataFilter]:
    condition = filters.condition or FilterCondition.AND
    if condition != FilterCondition.AND and len(filters.filters) > 1:
        raise InvalidFilterError(
            f"cubemem filters combine with AND only; got condition {condition.value!r}"
        )
    if condition == FilterCondition.NOT:
        raise InvalidFilterError("cubemem filters do not support NOT; use operator '!=' instead")
    flat: list[MetadataFilter] = []
    for item in filters.filters:
        flat.extend(_flatten(item) if isinstance(item, MetadataFilters) else [item])
    return flat


def _apply(f: MetadataFilter, spec: dict[str, Any]) -> None:
    op, key, value = f.operator, f.key, f.value
    if key in (*SCOPE_KEYS, "kind"):
        _require(op, (FilterOperator.EQ,), key)
        if key in spec and spec[key] != value:
            raise _Unsatisfiable(f"{key} == {spec[key]!r} and {key} == {value!r}")
        spec[key] = value
    elif key == "tags":
        _require(op, (FilterOperator.EQ, FilterOperator.CONTAINS, FilterOperator.ALL), key)
        spec["tags"] += list(cast(list[str], value)) if op == FilterOperator.ALL else [value]
    elif key == "event_time":
        _require(op, (FilterOperator.GTE, FilterOperator.LT), key)
        bound = "after" if op == FilterOperator.GTE else "before"
        if bound in spec:  # both conditions hold: the later start, the earlier end
            value = max(spec[bound], value) if bound == "after" else min(spec[bound], value)
        spec[bound] = value
    else:
        _require(op, tuple(_METADATA_OPERATORS), key)
        symbol = _METADATA_OPERATORS[op] or "$eq"
        conditions = spec["metadata"].setdefault(key, {})  # "year >= 1 and year < 5"
        if symbol == "$ne" and "$ne" in conditions and conditions["$ne"] != value:
            symbol, value = "$nin", [conditions.pop("$ne"), value]  # != a and != b
        conditions[symbol] = _both(symbol, conditions.get(symbol, _UNSET), value, key)


_UNSET = object()


def _both(op: str, old: Any, new: Any, key: str) -> Any:
    """One operand meaning both conditions ``key op old`` and ``key op new``."""
    if old is _UNSET or old == new:
        return new
    if op == "$eq":
        raise _Unsatisfiable(f"{key} == {old!r} and {key} == {new!r}")
    if op in ("$gt", "$gte"):
        return max(old, new)
    if op in ("$lt", "$lte"):
        return min(old, new)
    if op == "$in":
        both = [v for v in old if v in new]
        if not both:
            raise _Unsatisfiable(f"{key} in {old!r} and {key} in {new!r}")
        return both
    return list(dict.fromkeys([*_as_list(old), *_as_list(new)]))  # $nin: exclude both


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _require(op: FilterOperator, allowed: tuple[FilterOperator, ...], key: str) -> None:
    if op not in allowed:
        names = ", ".join(repr(a.value) for a in allowed)
        raise InvalidFilterError(
            f"filter on {key!r} does not support operator {op.value!r}; use one of {names}"
        )
