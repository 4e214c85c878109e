"""Working memory: a small hot set of memories per (agent, session), with change hooks.

A memory becomes hot when it is written in that agent/session or returned by a search scoped
to it; heat decays with a half-life, and only the ``capacity`` hottest stay. Subscribers hear
when a set's membership changes or a member is updated or deleted — the activation package
turns hot sets into KV caches and rebuilds them on exactly these events.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable

from pydantic import BaseModel

log = logging.getLogger(__name__)

Key = tuple[str | None, str | None]


class WorkingSetChange(BaseModel):
    agent: str | None
    session: str | None
    ids: list[str]
    reason: str  # "membership", "updated", "deleted" or "moved" (to another kind of memory)


Subscriber = Callable[[WorkingSetChange], None]


class WorkingMemory:
    """Per-process hot sets; thread-safe; subscribers are called outside the lock."""

    def __init__(self, capacity: int = 32, half_life_s: float = 600.0) -> None:
        self.capacity = capacity
        self.half_life_s = half_life_s
        self._heat: dict[Key, dict[str, tuple[float, float]]] = {}
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(change)`` on every change; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def record(self, key: Key, hits: Iterable[tuple[str, float]], now: float | None = None) -> None:
        """Add heat ``weight`` to each memory id for ``key``; keep the hottest ``capacity``."""
        now = time.time() if now is None else now
        with self._lock:
            heat = self._heat.setdefault(key, {})
            before = set(heat)
            for id_, weight in hits:
                heat[id_] = (self._decayed(heat.get(id_), now) + weight, now)
            if len(heat) > self.capacity:
                ranked = sorted(heat, key=lambda i: self._decayed(heat[i], now), reverse=True)
                for id_ in ranked[self.capacity :]:
                    del heat[id_]
            after = set(heat)
            ids = self._ranked(heat, now)
        if after != before:
            self._notify(
                WorkingSetChange(agent=key[0], session=key[1], ids=ids, reason="membership")
            )

    def ids(self, key: Key, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self._lock:
            return self._ranked(self._heat.get(key, {}), now)

    def changed(self, ids: Iterable[str], reason: str) -> None:
        """A member was updated or deleted: sets holding it are told (deleted ones drop it)."""
        touched = set(ids)
        events = []
        with self._lock:
            for key, heat in self._heat.items():
                hit = touched & set(heat)
                if not hit:
                    continue
                if reason == "deleted":
                    for id_ in hit:
                        del heat[id_]
                events.append(
                    WorkingSetChange(
                        agent=key[0],
                        session=key[1],
                        ids=self._ranked(heat, time.time()),
                        reason=reason,
                    )
                )
        for event in events:
            self._notify(event)

    def _decayed(self, entry: tuple[float, float] | None, now: float) -> float:
        if entry is None:
            return 0.0
        value, at = entry
        return value * math.pow(0.5, max(0.0, now - at) / self.half_life_s)

    def _ranked(self, heat: dict[str, tuple[float, float]], now: float) -> list[str]:
        return sorted(heat, key=lambda i: (-self._decayed(heat[i], now), i))

    def _notify(self, event: WorkingSetChange) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not break writes or searches
                log.exception("working-memory subscriber %r failed", callback)
