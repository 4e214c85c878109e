"""Lifecycle: expired memories are archived, cold ones fade to the archive; pinned ones stay.

Every step is a status change (``active`` → ``archived``) that ``MemCube.restore`` undoes;
only ``purge`` deletes. The decay score of a memory is

    importance × recency × usage
    importance = metadata["importance"] (default 1) × provenance.trust
    recency    = 0.5 ** (days since it was stored or last returned by search / half-life)
    usage      = 1 + ln(1 + hits)

and a memory scoring under ``archive_below`` is archived, unless it is pinned (tag ``pinned``
or ``metadata["pinned"] = True``). Keyed memories (the LangGraph store) only expire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from cubemem.model import Filters, MemoryItem, Status
from cubemem.model.governance import Expiry
from cubemem.ops import retention
from cubemem.ops.context import Context
from cubemem.ops.read import iterate
from cubemem.ops.write import revise_many, revised


@dataclass
class LifecycleReport:
    expired: list[str] = field(default_factory=list)
    cold: list[str] = field(default_factory=list)
    retention: list[Expiry] = field(default_factory=list)
    """What each of the cube's retention rules forgot (``cubemem.ops.retention``)."""


def pinned(item: MemoryItem) -> bool:
    return "pinned" in item.tags or item.metadata.get("pinned") is True


def decay_score(item: MemoryItem, now: datetime, half_life_days: float) -> float:
    importance = item.metadata.get("importance", 1.0)
    if isinstance(importance, bool) or not isinstance(importance, int | float):
        importance = 1.0
    last = max(item.provenance.created_at, item.usage.last_access or item.provenance.created_at)
    days = max(0.0, (now - last).total_seconds() / 86400)
    recency = math.pow(0.5, days / half_life_days)
    return float(importance) * item.provenance.trust * recency * (1 + math.log1p(item.usage.hits))


def sweep(ctx: Context, *, now: datetime | None = None, dry_run: bool = False) -> LifecycleReport:
    """Forget what the cube's retention rules say is due, then archive what expired or went
    cold; each archive is a new version, written only where the memory is still the version
    the sweep read (a concurrent edit wins)."""
    now = now or ctx.clock()
    half_life_days, archive_below = ctx.settings.decay_half_life_days, ctx.settings.archive_below
    report = LifecycleReport(retention=retention.run(ctx, now=now, dry_run=dry_run))
    changed: list[tuple[MemoryItem, int]] = []
    active = Filters(status=[Status.ACTIVE], include_expired=True)
    for item in iterate(ctx, active):
        if item.expires_at is not None and item.expires_at <= now:
            report.expired.append(item.id)
        elif (
            item.namespace is None
            and not pinned(item)
            and decay_score(item, now, half_life_days) < archive_below
        ):
            report.cold.append(item.id)
        else:
            continue
        changed.append((revised(ctx, item, {"status": Status.ARCHIVED}), item.version))
    if changed and not dry_run:
        done: set[str] = set()
        for start in range(0, len(changed), 500):
            done.update(revise_many(ctx, changed[start : start + 500], {}))
        report.expired = [i for i in report.expired if i in done]
        report.cold = [i for i in report.cold if i in done]
        ctx.working.changed([*report.expired, *report.cold], "deleted")
    return report
