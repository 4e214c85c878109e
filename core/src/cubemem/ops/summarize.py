"""The ``summarize`` follow-up: a summary memory of a session's turns that no summary covers
yet, once there are ``summarizer.every`` of them (any number when asked directly). See
``cubemem.summarize``."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence

from cubemem.errors import BackendUnavailableError
from cubemem.model import Filters, MemoryInput, MemoryItem, Scope, Status
from cubemem.ops.context import Context
from cubemem.ops.create import new_item
from cubemem.ops.write import insert

log = logging.getLogger(__name__)

SOURCE = "summary"
_NAMESPACE = uuid.UUID("6c1f0e2a-3b7d-4e59-8a21-94d0c5b7e3f1")


def summarize(ctx: Context, ids: Sequence[str], *, every: int | None = None) -> list[MemoryItem]:
    """Summaries for the sessions these turns belong to; returns those stored now."""
    summarizer = ctx.summarizer
    if summarizer is None:
        raise BackendUnavailableError(
            "no summarizer is set where this summarize step runs; set "
            "cube.maintenance.summarizer in the worker process, then replay the task "
            "(cubemem scheduler retry)"
        )
    sessions = {
        (t.scope.user, t.scope.session)
        for t in ctx.store.get(list(dict.fromkeys(ids)))
        if t.provenance.source == "message" and t.scope.session is not None
    }
    needed = summarizer.every if every is None else every
    stored: list[MemoryItem] = []
    for user, session in sorted(sessions, key=str):
        stored += session_summaries(ctx, user, session, needed)
        summarizer.waiting[(user, session)] = time.monotonic()  # dropped once all covered
    return stored


def quiet(ctx: Context) -> list[MemoryItem]:
    """Summaries of the sessions written to here that have been quiet for ``quiet_s`` with
    turns left uncovered (run by the lifecycle sweep); a failure waits for the next sweep."""
    summarizer = ctx.summarizer
    quiet_s = getattr(summarizer, "quiet_s", None)
    if summarizer is None or quiet_s is None:
        return []
    stored: list[MemoryItem] = []
    now = time.monotonic()
    for key, last in list(summarizer.waiting.items()):
        if now - last < quiet_s:
            continue
        try:
            stored += session_summaries(ctx, key[0], key[1], 1)
        except Exception:
            log.warning("summarizing quiet session %r failed; next sweep", key[1], exc_info=True)
            continue
        if summarizer.waiting.get(key) == last:
            del summarizer.waiting[key]
    return stored


def session_summaries(
    ctx: Context, user: str | None, session: str, needed: int
) -> list[MemoryItem]:
    summarizer = ctx.summarizer
    assert summarizer is not None
    filters = Filters(user=user, session=session)
    items = [
        i for i in ctx.store.get(ctx.store.match_ids(filters, now=ctx.clock()))
        if i.status is Status.ACTIVE and i.scope.user == user
    ]  # fmt: skip
    covered = {s for i in items if i.provenance.source == SOURCE for s in i.provenance.source_ids}
    turns = sorted(
        (i for i in items if i.provenance.source == "message"),
        key=lambda t: t.event_time,  # stable: the store's order within one moment
    )
    left = [t for t in turns if not set(_cites(t)) <= covered]
    stored: list[MemoryItem] = []
    while len(left) >= max(needed, 1):
        chunk, left = left[: summarizer.max_turns], left[summarizer.max_turns :]
        text = summarizer(chunk)
        cited = list(dict.fromkeys(s for t in chunk for s in _cites(t)))
        agents = {t.scope.agent for t in chunk}
        scope = Scope(user=user, agent=agents.pop() if len(agents) == 1 else None, session=session)
        given = MemoryInput(
            content=text, source_ids=cited, occurred_at=chunk[-1].provenance.occurred_at
        )
        item = new_item(ctx, given, scope, ["summary"], {"kind": "summary"}, source=SOURCE)
        origin = sorted(t.id for t in chunk)
        item = item.model_copy(update={"id": uuid.uuid5(_NAMESPACE, json.dumps(origin)).hex})
        stored += insert(ctx, [item])
    return stored


def _cites(turn: MemoryItem) -> list[str]:
    return turn.provenance.source_ids or [turn.id]
