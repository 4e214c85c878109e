"""Reading memories: hybrid search (which counts usage and warms working memory), listing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from cubemem.errors import CubeBusyError, InvalidInputError
from cubemem.model import Filters, MemoryItem, SearchResult, validate_content
from cubemem.ops import inputs
from cubemem.ops.context import Context

log = logging.getLogger(__name__)

FiltersLike = Filters | dict[str, Any] | None


def search(
    ctx: Context, query: str, *, k: int = 10, filters: FiltersLike = None
) -> list[SearchResult]:
    """The ``k`` memories most relevant to ``query`` (dense + BM25, fused)."""
    query = validate_content(query, ctx.settings.max_content_bytes, "search query")
    inputs.positive_int(k, "k")
    parsed = Filters.parse(filters)
    now = ctx.clock()
    hits = ctx.retriever.search(query, k, parsed, now)
    items = {item.id: item for item in ctx.store.get([h[0] for h in hits])}
    results = [
        SearchResult(item=items[id_], score=s, dense_score=d, lexical_score=lex)
        for id_, s, d, lex in hits
        if id_ in items
    ]
    try:
        ctx.store.touch([r.id for r in results], now)
    except CubeBusyError as exc:  # usage counts are advisory; the answer is not
        log.warning("search usage not recorded: %s", exc)
    if results:
        key = (parsed.agent, parsed.session)
        ctx.working.record(key, [(r.id, 1.0 / (rank + 1)) for rank, r in enumerate(results)])
    return results


def page(
    ctx: Context, filters: FiltersLike = None, *, limit: int = 100, offset: int = 0
) -> list[MemoryItem]:
    """A page of memories in insertion order."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be an int >= 0, got {offset!r}")
    return ctx.store.select(Filters.parse(filters), now=ctx.clock(), limit=limit, offset=offset)


def iterate(
    ctx: Context, filters: FiltersLike = None, *, page_size: int = 500
) -> Iterator[MemoryItem]:
    """Every matching memory, fetched a page at a time."""
    offset = 0
    while batch := page(ctx, filters, limit=page_size, offset=offset):
        yield from batch
        offset += len(batch)


def count(ctx: Context, filters: FiltersLike = None) -> int:
    return ctx.store.count(Filters.parse(filters), now=ctx.clock())
