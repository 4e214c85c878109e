"""Reading memories: hybrid search (which counts usage and warms working memory), listing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from cubemem import limits
from cubemem.errors import CubeBusyError, InvalidInputError
from cubemem.limits import shown
from cubemem.model import Filters, MemoryItem, SearchResult, Status, validate_content
from cubemem.ops import inputs, timeline
from cubemem.ops.context import Context

log = logging.getLogger(__name__)

FiltersLike = Filters | dict[str, Any] | None


def search(
    ctx: Context,
    query: str,
    *,
    k: int = 10,
    filters: FiltersLike = None,
    min_score: float | None = None,
    include_superseded: bool = False,
    as_of: datetime | str | None = None,
    known_at: datetime | str | None = None,
) -> list[SearchResult]:
    """The ``k`` memories most relevant to ``query`` (dense + BM25, fused), leaving out those
    whose ``relevance`` is below ``min_score``.

    Current belief by default: facts not ended (``valid_to`` after now) and not superseded.
    ``as_of``: what was true at that moment (``cubemem.ops.timeline``), superseded facts
    included where their valid time covers it. ``known_at``: the versions the cube held then;
    ranked by how each memory matches now, each result the version of that moment."""
    query = validate_content(query, ctx.settings.max_content_bytes, "search query")
    inputs.positive_int(k, "k")
    threshold = check_min_score(min_score)
    valid_at = inputs.moment(as_of, "as_of")
    recorded_at = inputs.moment(known_at, "known_at")
    parsed = Filters.parse(filters)
    if (include_superseded or valid_at) and Status.SUPERSEDED not in parsed.status:
        parsed = parsed.model_copy(update={"status": [*parsed.status, Status.SUPERSEDED]})
    now = ctx.clock()
    if recorded_at is None:
        hits = ctx.retriever.search(
            query, k, parsed, now, valid_at=valid_at, ended=include_superseded
        )
        items = {item.id: item for item in ctx.store.get([h.id for h in hits])}
    else:
        items = timeline.recorded(ctx, recorded_at, parsed, valid_at, include_superseded)
        hits = ctx.retriever.search(
            query, k, Filters.everything(), now, ended=True, only=list(items)
        )
    hits = [h for h in hits if h.relevance >= threshold]
    results = [
        SearchResult(
            item=items[h.id],
            score=h.score,
            relevance=h.relevance,
            dense_score=h.dense,
            lexical_score=h.lexical,
            time_score=round(h.time, 6),
            entity_score=round(h.entity, 6),
        )
        for h in hits
        if h.id in items
    ]
    try:
        ctx.store.touch([r.id for r in results], now)
    except CubeBusyError as exc:  # usage counts are advisory; the answer is not
        log.warning("search usage not recorded: %s", exc)
    if results:
        key = (parsed.agent, parsed.session)
        ctx.working.record(key, [(r.id, 1.0 / (rank + 1)) for rank, r in enumerate(results)])
    return results


def check_min_score(min_score: float | None) -> float:
    """``min_score`` is a relevance in [0, 1] (or None: no threshold)."""
    if min_score is None:
        return 0.0
    if isinstance(min_score, bool) or not isinstance(min_score, int | float):
        raise InvalidInputError(f"min_score must be a number from 0 to 1, got {shown(min_score)}")
    if not 0.0 <= min_score <= 1.0:
        raise InvalidInputError(
            f"min_score is a relevance from 0 to 1 (SearchResult.relevance), got {shown(min_score)}"
        )
    return float(min_score)


def page(
    ctx: Context, filters: FiltersLike = None, *, limit: int = 100, offset: int = 0
) -> list[MemoryItem]:
    """A page of memories in insertion order."""
    limits.count(limit, "limit", minimum=1)
    limits.count(offset, "offset")
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
