"""The search index's copy of the vectors, in bfloat16: half the memory of float32.

Rows are slots. They live in two blocks: ``base``, the rows loaded from a persisted index
(``cubemem.index_file``: a copy-on-write map of the file, so only the pages a search touches
are read), and ``tail``, the rows written since, which grows. A write to a slot of the base
changes that page of the map only (the file is never written through it).

bfloat16 is float32 with the low 16 bits of the mantissa rounded off (to nearest, ties to
even), kept as ``uint16``: back to float32 is a shift, which numpy does at memory speed —
unlike float16, whose conversion numpy does one number at a time (17 ms per 10^4 rows of 384
here against 4 ms, and 1.6 ms for float32). Scores are float32 inner products over chunks
converted on the fly. A component keeps 8 significant bits (relative error at most 2^-9), so
an inner product of unit vectors is within about 4·10^-4 of float32's (measured: LoCoMo and
fact-set rankings unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK = 2048
"""Rows converted at a time (their float32 copy stays in the CPU's cache)."""


class Vectors:
    """bfloat16 rows by slot; see the module docstring."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.base = np.zeros((0, dimension), dtype=np.uint16)
        self.tail = np.zeros((256, dimension), dtype=np.uint16)

    def __getstate__(self) -> dict[str, object]:
        """One block (the tail up to its last row appended to the base) for pickling."""
        used = self._used()
        return {"dimension": self.dimension, "base": self.rows(0, used)}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.dimension = int(state["dimension"])  # type: ignore[call-overload]
        self.base = state["base"]  # type: ignore[assignment]
        self.tail = np.zeros((256, self.dimension), dtype=np.uint16)
        self._last = len(self.base) - 1

    _last = -1
    """The highest slot ever set."""

    def _used(self) -> int:
        return self._last + 1

    def __len__(self) -> int:
        return len(self.base) + len(self.tail)

    @property
    def nbytes(self) -> int:
        return int(self.base.nbytes + self.tail.nbytes)

    def set(self, slot: int, vector: Sequence[float] | np.ndarray) -> None:
        vector = bfloat16(vector)
        nb = len(self.base)
        if slot < nb:
            self.base[slot] = vector
        else:
            at = slot - nb
            if at >= len(self.tail):
                grown = np.zeros((max(at + 1, 2 * len(self.tail)), self.dimension), np.uint16)
                grown[: len(self.tail)] = self.tail
                self.tail = grown
            self.tail[at] = vector
        self._last = max(self._last, slot)

    def rows(self, start: int, end: int) -> np.ndarray:
        """Rows ``start..end-1`` as one bfloat16 array (a view when they lie in one block)."""
        nb = len(self.base)
        if end <= nb:
            return self.base[start:end]
        if start >= nb:
            return self.tail[start - nb : end - nb]
        return np.concatenate([self.base[start:], self.tail[: end - nb]])

    def gather(self, slots: np.ndarray) -> np.ndarray:
        """The rows of ``slots`` (sorted or not), bfloat16."""
        nb = len(self.base)
        if not len(slots) or slots.max() < nb:
            return self.base[slots]
        if slots.min() >= nb:
            return self.tail[slots - nb]
        out = np.empty((len(slots), self.dimension), dtype=np.uint16)
        low = slots < nb
        out[low] = self.base[slots[low]]
        out[~low] = self.tail[slots[~low] - nb]
        return out

    def scores(self, query: np.ndarray, slots: np.ndarray | None = None, n: int = 0) -> np.ndarray:
        """float32 inner products of ``query`` with the rows of ``slots`` (None: rows 0..n-1)."""
        q = np.asarray(query, dtype=np.float32)
        if slots is not None:
            return dot(self.gather(slots), q)
        nb, held = len(self.base), min(n, len(self))
        out = (
            dot(self.base[:held], q)
            if held <= nb
            else np.concatenate([dot(self.base, q), dot(self.tail[: held - nb], q)])
        )
        return out if held == n else np.concatenate([out, np.zeros(n - held, np.float32)])


def bfloat16(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 bits (rounded to nearest, ties to even)."""
    bits = np.ascontiguousarray(vector, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def float32(rows: np.ndarray) -> np.ndarray:
    """bfloat16 bits back to float32 (exactly: the low bits are zero)."""
    return (rows.astype(np.uint32) << 16).view(np.float32)


def dot(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``matrix @ query`` in float32 for a bfloat16 ``matrix``, a chunk at a time.

    einsum, not BLAS: OpenBLAS threads spin after a call and slow the query embedding that
    runs next on the same cores (a search p95 of 119 ms instead of 19 at 10^4)."""
    out = np.empty(len(matrix), dtype=np.float32)
    for i in range(0, len(matrix), CHUNK):
        out[i : i + CHUNK] = np.einsum("ij,j->i", float32(matrix[i : i + CHUNK]), query)
    return out
