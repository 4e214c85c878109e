"""A byte-budgeted LRU pool of KV blocks on CPU and GPU."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from cubemem.errors import InvalidInputError
from cubemem_activation.block import KVBlock


@dataclass
class PoolStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class BlockPool:
    """Blocks by key, each kept on one device; least recently used go first over budget.

    ``budgets`` maps a device (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...) to bytes. A block larger
    than its device's whole budget is refused.
    """

    def __init__(self, budgets: dict[str, int] | None = None) -> None:
        self.budgets = {str(torch.device(d)): b for d, b in (budgets or {"cpu": 1 << 30}).items()}
        self._blocks: OrderedDict[str, KVBlock] = OrderedDict()
        self._lock = threading.Lock()
        self._stats = PoolStats()

    def put(
        self, key: str, block: KVBlock, device: str | None = None, dtype: torch.dtype | None = None
    ) -> KVBlock:
        target = str(torch.device(device)) if device else str(block.device)
        budget = self.budgets.get(target)
        if budget is None:
            raise InvalidInputError(f"the pool has no budget for device {target}; give one")
        if block.nbytes > budget:
            raise InvalidInputError(
                f"block of {block.nbytes} bytes exceeds the {target} budget of {budget} bytes"
            )
        placed = block.to(target, dtype)
        with self._lock:
            self._blocks.pop(key, None)
            self._blocks[key] = placed
            self._evict(target)
        return placed

    def get(
        self, key: str, device: str | None = None, dtype: torch.dtype | None = None
    ) -> KVBlock | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is None:
                self._stats.misses += 1
                return None
            self._stats.hits += 1
            self._blocks.move_to_end(key)
        if (device and str(torch.device(device)) != str(block.device)) or (
            dtype and dtype != block.dtype
        ):
            return self.put(key, block, device, dtype)
        return block

    def discard(self, key: str) -> None:
        with self._lock:
            self._blocks.pop(key, None)

    def _evict(self, device: str) -> None:
        budget = self.budgets[device]
        while self._used(device) > budget:
            victim = next(k for k, b in self._blocks.items() if str(b.device) == device)
            del self._blocks[victim]
            self._stats.evictions += 1

    def _used(self, device: str) -> int:
        return sum(b.nbytes for b in self._blocks.values() if str(b.device) == device)

    def __contains__(self, key: str) -> bool:
        return key in self._blocks

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "blocks": len(self._blocks),
                "bytes": {d: self._used(d) for d in self.budgets},
                "budgets": dict(self.budgets),
                "hits": self._stats.hits,
                "misses": self._stats.misses,
                "evictions": self._stats.evictions,
            }
