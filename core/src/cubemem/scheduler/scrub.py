"""What a forget does to a queue: the acknowledged writes that are not stored yet (ready,
waiting for a retry, or dead-lettered) lose the memories it erases before any worker stores
them, whichever process queued them and whichever process forgets.

``queued_writes(ids, scope, filters)`` is the ``keep`` function a queue's ``scrub`` applies to
each task it holds: an ``add`` task keeps only the items the forget does not ask for, and is
dropped when none is left. An item whose match needs more than its id and scope (a forget by
tags, kind, metadata, time or value) cannot be told apart in the queue: its task is ``WAIT``ed
for, like a task a worker holds — the forget erases it once it is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any, Final

from cubemem.errors import CubeBusyError
from cubemem.scheduler.tasks import Task, TaskKind, TaskQueue

WAIT: Final = "wait"
"""``keep``'s answer for a task the forget must let land first."""

Keep = Callable[[Task], "Task | str | None"]
_SCOPE = ("user", "agent", "session")
_PLAIN = {"status", "include_expired", *_SCOPE}
"""Filter fields an item in the queue can be matched on (status: it will be stored active)."""


def queued_writes(
    cube_id: str,
    ids: Collection[str],
    scope: dict[str, str],
    filters: dict[str, Any],
    *,
    dropped: set[str] | None = None,
) -> Keep:
    """The ``keep`` of a forget of ``ids`` plus the memories ``scope`` and ``filters`` (a
    ``Filters`` dump without defaults) match together; neither given: ``ids`` alone. The ids
    of the items it drops are added to ``dropped``."""
    wanted = dict(scope)
    for name in _SCOPE:
        if filters.get(name) is not None:
            wanted[name] = filters[name]
    statuses = filters.get("status", ["active"])
    stored_active = "active" in ([statuses] if isinstance(statuses, str) else statuses)
    by_selector = (bool(wanted) or bool(set(filters) - _PLAIN)) and stored_active
    exact = not set(filters) - _PLAIN

    def asked(item: dict[str, Any]) -> bool | str:
        if item.get("id") in ids:
            return True
        if not by_selector:
            return False
        got = item.get("scope") or {}
        if any(got.get(k) != v for k, v in wanted.items()):
            return False
        return True if exact else WAIT

    def keep(task: Task) -> Task | str | None:
        if task.kind is not TaskKind.ADD or task.payload.get("cube") not in (None, cube_id):
            return task
        items = task.payload.get("items") or []
        verdicts = [asked(i) if isinstance(i, dict) else False for i in items]
        if WAIT in verdicts:
            return WAIT
        left = [i for i, v in zip(items, verdicts, strict=True) if v is not True]
        if len(left) == len(items):
            return task
        if dropped is not None:
            dropped.update(i["id"] for i, v in zip(items, verdicts, strict=True) if v is True)
        if not left:
            return None
        return task.model_copy(update={"payload": {**task.payload, "items": left}})

    return keep


def clear(queues: Collection[TaskQueue], keep: Keep, wait_s: float) -> None:
    """Scrub every queue; wait up to ``wait_s`` for the tasks workers hold (or that must be
    stored first) to leave it. Raises ``CubeBusyError`` when some are still there — the
    forget then erases no stored memory: run it again once the writes are stored."""
    deadline = time.monotonic() + wait_s
    while True:
        held = [t for q in queues for t in q.scrub(keep)]
        if not held:
            return
        if time.monotonic() >= deadline:
            raise CubeBusyError(
                f"{len(held)} acknowledged writes this forget asks for are being stored by a "
                f"worker (or must be stored before they can be told apart) and were still "
                f"queued after {wait_s:g} s (Settings.forget_drain_s); the queued writes it "
                "could tell apart are gone, the stored memories are not forgotten yet: run "
                "the forget again once the workers have stored them"
            )
        time.sleep(0.05)
