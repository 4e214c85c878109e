"""Composing several KV blocks into one prefix, three ways, and measuring how close each is.

- ``naive``: concatenate along the sequence axis (what MemOS does). Every block was built from
  position 0, so a later block's keys carry the wrong rotary positions, and none of its tokens
  attended to the blocks before it.
- ``rotated``: concatenate, re-rotating each block's cached keys by its new offset (RoPE keys
  compose: rotating a key built at position p by d gives the key at p + d). Positions are right;
  the missing cross-block attention remains.
- ``sequential``: prefill each block's tokens after the previous ones (exact, the same as one
  prefill of the whole text); costs a prefill, so it is for blocks known together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from transformers import DynamicCache

from cubemem.errors import InvalidInputError
from cubemem_activation.block import KVBlock, from_cache, prefill

Strategy = Literal["naive", "rotated", "sequential"]
STRATEGIES: tuple[Strategy, ...] = ("naive", "rotated", "sequential")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@torch.inference_mode()
def shift_keys(model: Any, keys: torch.Tensor, delta: int) -> torch.Tensor:
    """Keys cached at positions p, as if they had been computed at p + ``delta``."""
    if delta == 0:
        return keys
    rotary = getattr(getattr(model, "model", model), "rotary_emb", None)
    if rotary is None:
        raise InvalidInputError(f"{type(model).__name__} has no rotary embedding to re-rotate")
    positions = torch.full((1, keys.shape[-2]), delta, device=keys.device, dtype=torch.long)
    cos, sin = rotary(keys.to(torch.float32), positions)
    scale = getattr(rotary, "attention_scaling", 1.0) or 1.0
    cos, sin = (cos / scale).unsqueeze(1), (sin / scale).unsqueeze(1)
    k = keys.to(torch.float32)
    return (k * cos + _rotate_half(k) * sin).to(keys.dtype)


def compose(
    model: Any, tokenizer: Any, blocks: Sequence[KVBlock], strategy: Strategy = "rotated"
) -> KVBlock:
    """One block for ``blocks`` in order (see the module docstring for the strategies)."""
    if not blocks:
        raise InvalidInputError("compose needs at least one block")
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"unknown strategy {strategy!r}; use one of {STRATEGIES}")
    for block in blocks:
        block.check(model, tokenizer)
    if len(blocks) == 1:
        return blocks[0]
    ids = [t for b in blocks for t in b.token_ids]
    text = "".join(b.text for b in blocks)
    memory_ids = tuple(m for b in blocks for m in b.memory_ids)
    if strategy == "sequential":
        cache: DynamicCache | None = None
        for block in blocks:
            cache = prefill(model, list(block.token_ids), cache)
        assert cache is not None  # blocks is not empty
        return from_cache(
            cache, ids, blocks[0].fingerprint, text=text, memory_ids=memory_ids,
            meta={"strategy": strategy},
        )  # fmt: skip
    keys: list[list[torch.Tensor]] = []
    values: list[list[torch.Tensor]] = []
    for layer in range(len(blocks[0].keys)):
        offset, layer_keys = 0, []
        for block in blocks:
            k = block.keys[layer]
            layer_keys.append(shift_keys(model, k, offset) if strategy == "rotated" else k)
            offset += len(block)
        keys.append(layer_keys)
        values.append([b.values[layer] for b in blocks])
    return KVBlock.from_tensors(  # joins the pieces straight into the new block's buffers
        ids,
        keys,
        values,
        blocks[0].fingerprint,
        text=text,
        memory_ids=memory_ids,
        meta={"strategy": strategy},
    )


@torch.inference_mode()
def next_token_logits(model: Any, block: KVBlock, probe_ids: Sequence[int]) -> torch.Tensor:
    """Logits after the block's prefix followed by ``probe_ids``."""
    offset = len(block)
    input_ids = torch.tensor([list(probe_ids)], device=model.device)
    positions = torch.arange(offset, offset + len(probe_ids), device=model.device)
    with block.borrow(model) as cache:
        out = model(input_ids=input_ids, past_key_values=cache, cache_position=positions)
    return out.logits[0, -1].to(torch.float32)


def distance(
    model: Any, block: KVBlock, exact: KVBlock, probe_ids: Sequence[int]
) -> dict[str, float]:
    """How far ``block`` is from ``exact`` (a full prefill of the same tokens) on a probe:
    the largest next-token logit difference and KL(exact ‖ block)."""
    got = next_token_logits(model, block, probe_ids)
    want = next_token_logits(model, exact, probe_ids)
    log_p, log_q = torch.log_softmax(want, -1), torch.log_softmax(got, -1)
    return {
        "max_logit_diff": float((got - want).abs().max()),
        "kl": float((log_p.exp() * (log_p - log_q)).sum()),
    }
