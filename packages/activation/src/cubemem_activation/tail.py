"""A block's *tail*: its buffers have spare room after its tokens, lent to one generation at
a time, whose new tokens are written there (``TailLayer``) — so injecting a block copies
nothing and the block's own positions are never written."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


class Tail:
    """A block's buffers (its tokens, then spare room), lent to one generation at a time."""

    def __init__(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
        self.keys, self.values = tuple(keys), tuple(values)
        self.lock = threading.Lock()


Pieces = torch.Tensor | Sequence[torch.Tensor]
"""A layer's keys or values: one tensor, or pieces to join along the sequence axis."""


def with_tail(
    keys: Sequence[Pieces],
    values: Sequence[Pieces],
    headroom: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], Tail | None]:
    """Copy ``keys``/``values`` (onto ``device``/``dtype``) into buffers ``headroom`` tokens
    longer, joining pieces as they go; return views of the copies and the tail."""
    layers = [[t] if isinstance(t, torch.Tensor) else list(t) for t in (*keys, *values)]
    length = sum(p.shape[-2] for p in layers[0]) if layers else 0
    with torch.inference_mode(False):  # buffers generation may write into outside inference
        buffers = []
        for pieces in layers:
            first = pieces[0]
            shape = (*first.shape[:-2], length + max(headroom, 0), first.shape[-1])
            buffer = torch.empty(shape, dtype=dtype or first.dtype, device=device or first.device)
            offset = 0
            for piece in pieces:
                buffer[..., offset : offset + piece.shape[-2], :].copy_(piece)
                offset += piece.shape[-2]
            buffers.append(buffer)
    n = len(keys)
    if headroom <= 0:
        return tuple(buffers[:n]), tuple(buffers[n:]), None
    views = [b[..., :length, :] for b in buffers]
    return tuple(views[:n]), tuple(views[n:]), Tail(buffers[:n], buffers[n:])


class TailLayer(DynamicLayer):
    """A cache layer over a borrowed block: new tokens go into the block's tail, not a copy.

    The block's own positions are never written: an update that would not fit in the tail, a
    crop below the block, or any batch/beam/offload operation first moves the layer onto
    tensors of its own (one copy), after which it is a plain ``DynamicLayer``.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = (keys, values)
        self._floor = self._length = length
        self._returned = False
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self._view()

    def _view(self) -> None:
        assert self._buffers is not None
        keys, values = self._buffers
        self.keys, self.values = keys[..., : self._length, :], values[..., : self._length, :]

    def _own(self) -> None:
        """Leave the block's buffers; from here on the layer grows by concatenation."""
        if self._buffers is not None:
            assert self.keys is not None and self.values is not None  # viewed into the buffers
            self.keys, self.values = self.keys.clone(), self.values.clone()
            self._buffers = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._returned:
            raise RuntimeError(
                "this cache was lent by KVBlock.borrow and returned when its `with` ended; "
                "use KVBlock.cache(model) for a cache to keep"
            )
        end = self._length + key_states.shape[-2]
        if self._buffers is None or end > self._buffers[0].shape[-2]:
            self._own()
            return super().update(key_states, value_states, *args, **kwargs)
        keys, values = self._buffers
        keys[..., self._length : end, :].copy_(key_states)
        values[..., self._length : end, :].copy_(value_states)
        self._length = end
        self._view()
        assert self.keys is not None and self.values is not None
        return self.keys, self.values

    def crop(self, tokens_to_remove: int) -> None:
        if self._buffers is not None and 0 > tokens_to_remove >= self._floor - self._length:
            self._length += tokens_to_remove
            self._view()
            return
        self._own()
        super().crop(tokens_to_remove)

    def give_back(self) -> None:
        self._buffers = None
        self._returned = True
        self.keys = self.values = None
        self.is_initialized = False

    def reset(self) -> None:
        self._buffers = None
        super().reset()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._own()
        super().batch_repeat_interleave(repeats)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._own()
        super().batch_select_indices(indices)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._own()
        super().reorder_cache(beam_idx)

    def offload(self) -> None:
        self._own()
        super().offload()
