"""When a memory moves between the three kinds (plaintext, activation, parametric), from
the usage the cube keeps and how long its text has stood unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cubemem.model import Kind, MemoryItem
from cubemem_activation.adapters import Adapter


@dataclass(frozen=True)
class TierPolicy:
    """When a memory moves between kinds, from the usage the cube keeps (``MemoryItem.usage``:
    search hits and the last one) and how long its text has stood unchanged."""

    hot_hits: int = 3
    """plaintext -> activation: at least this many hits, the last within ``hot_window``."""
    hot_window: timedelta = timedelta(days=1)
    stable_hits: int = 20
    """-> parametric: at least this many hits, text unchanged for ``stable_for``, and used
    within ``cold_after``."""
    stable_for: timedelta = timedelta(days=7)
    cold_after: timedelta = timedelta(days=30)
    """No hit for this long: back to plaintext (out of the adapter at its next training)."""
    min_memories: int = 3
    """Fewer parametric memories than this: no adapter (and an old one is removed)."""
    adapter_name: str = "tiers"

    def kind_of(self, item: MemoryItem, now: datetime, text_since: datetime) -> tuple[Kind, str]:
        """The kind an active memory should have now, and why."""
        hits, last = item.usage.hits, item.usage.last_access
        idle = None if last is None else now - last
        unchanged = now - text_since
        if (
            hits >= self.stable_hits
            and unchanged >= self.stable_for
            and idle is not None
            and idle < self.cold_after
        ):
            return Kind.PARAMETRIC, f"{hits} hits, text unchanged for {unchanged.days} days"
        if hits >= self.hot_hits and idle is not None and idle <= self.hot_window:
            return Kind.ACTIVATION, f"{hits} hits, last {_ago(idle)} ago"
        if idle is None:
            return Kind.PLAINTEXT, "never used"
        return Kind.PLAINTEXT, f"{hits} hits, last {_ago(idle)} ago"


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 86400} days" if seconds >= 86400 else f"{seconds // 3600} hours"


@dataclass(frozen=True)
class MigrationReport:
    moved: list[tuple[str, Kind, Kind]]
    """(memory id, from, to) for each move recorded."""
    trained: Adapter | None
    removed: list[str]
    """Adapters deleted (replaced, or too few memories left)."""
