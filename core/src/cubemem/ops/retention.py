"""Retention: the cube's rules (``RetentionRule``, in its manifest) say how long memories are
kept; the scheduler's lifecycle sweep runs them, and each expiry is a ``forget`` — every
version, index entry and derived fact goes — recorded in the audit log (ids and counts) where
the cube has one. ``dry_run`` lists what each rule would forget and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from cubemem.model import Filters, Status
from cubemem.model.governance import Expiry, RetentionRule
from cubemem.ops.context import Context
from cubemem.ops.forget import forget

_ANY_STATUS = [s.value for s in Status]


def run(
    ctx: Context,
    rules: Sequence[RetentionRule] | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[Expiry]:
    """Apply ``rules`` (default: the cube's own), in order; one report per rule."""
    rules = ctx.governance.retention() if rules is None else rules
    reports = []
    for rule in rules:
        due = sorted(due_ids(ctx, rule, now=now))
        if dry_run or not due:
            reports.append(Expiry(rule=rule.name, ids=due, dry_run=dry_run))
            continue
        gone = forget(ctx, due, audit={"rule": rule.name})
        reports.append(Expiry(rule=rule.name, ids=gone.ids, derived=gone.derived))
    return reports


def due_ids(ctx: Context, rule: RetentionRule, *, now: datetime | None = None) -> set[str]:
    """The memories ``rule`` forgets at ``now`` (a forget also takes what derives from them)."""
    now = now or ctx.clock()
    given: dict[str, Any] = dict(rule.filters)
    given.setdefault("status", _ANY_STATUS)
    given.setdefault("include_expired", True)
    due: set[str] = set()
    if rule.keep_days is not None:
        cutoff = now - timedelta(days=rule.keep_days)
        before = Filters.parse(given).before
        older = given | {"before": min(cutoff, before) if before else cutoff}
        due |= set(ctx.store.match_ids(Filters.parse(older), now=now))
    if rule.keep_last is not None:
        items = ctx.store.get(ctx.store.match_ids(Filters.parse(given), now=now))
        items.sort(key=lambda i: (i.event_time, i.id), reverse=True)
        due |= {i.id for i in items[rule.keep_last :]}
    if rule.forget_deleted:
        deleted = given | {"status": [Status.DELETED.value]}
        due |= set(ctx.store.match_ids(Filters.parse(deleted), now=now))
    return due
