"""``cubemem bench activation``: time to first token with memory re-prefilled vs injected.

A ~50M-parameter Llama-style model is built from a config (random weights: speed is what is
measured, and greedy identity holds for any weights). For each prefix length the memory is a
prefix of that many tokens; the question is ``query_tokens`` more.

- prefill TTFT: one forward pass over prefix + question, then the first token;
- injected TTFT: borrow the stored block (``KVBlock.borrow``: the question's keys go into the
  block's spare tail, nothing is copied), a forward pass over the question only; both compute
  the output head for the last position only, as ``generate`` does;
- copy TTFT: the same with a copy-on-write cache (``KVBlock.cache``), what a second
  concurrent generation on the same block gets;
- greedy_identical: ``new_tokens`` greedy tokens both ways are the same;
- composition: the prefix cut in four blocks, composed naive / rotated / sequential, against a
  full prefill (max next-token logit difference and KL).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from cubemem.errors import InvalidInputError
from cubemem_activation.block import Fingerprint, from_cache, prefill
from cubemem_activation.compose import STRATEGIES, compose, distance


def bench_model(device: str = "cpu", seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=10,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers wraps .to; runs fine
    return model.eval()


class _NoTokenizer:
    """The benchmark works on token ids; the fingerprint still needs a tokenizer identity."""

    chat_template = ""
    backend_tokenizer = None

    def get_vocab(self) -> dict[str, int]:
        return {"<random-ids>": 0}


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _ttft(model: Any, block: Any, query: list[int], repeats: int) -> tuple[float, float, float]:
    """Median ms to the first token: everything prefilled, or the question after the block
    (borrowed, or copied)."""
    p = len(block)
    full = torch.tensor([[*block.token_ids, *query]], device=model.device)
    q = torch.tensor([query], device=model.device)
    positions = torch.arange(p, p + len(query), device=model.device)

    def prefilled() -> int:
        return int(model(input_ids=full, logits_to_keep=1).logits[0, -1].argmax())

    def injected() -> int:
        with block.borrow(model) as cache:  # borrowing (and the intact check) is timed
            out = model(
                input_ids=q, past_key_values=cache, cache_position=positions, logits_to_keep=1
            )
        return int(out.logits[0, -1].argmax())

    def copied() -> int:
        cache = block.cache(model)  # the copy is part of the cost
        out = model(input_ids=q, past_key_values=cache, cache_position=positions, logits_to_keep=1)
        return int(out.logits[0, -1].argmax())

    prefilled(), injected(), copied()  # warm up
    return (
        _median_ms(prefilled, repeats),
        _median_ms(injected, repeats),
        _median_ms(copied, repeats),
    )


@torch.inference_mode()
def run(
    prefix_tokens: Sequence[int],
    *,
    query_tokens: int = 16,
    new_tokens: int = 16,
    repeats: int = 3,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    if not prefix_tokens or any(
        isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in prefix_tokens
    ):
        raise InvalidInputError(
            f"prefix lengths must be positive ints, got {list(prefix_tokens)!r}"
        )
    model: Any = bench_model(device)  # transformers types generate() for its mixin only
    params = sum(p.numel() for p in model.parameters())
    from cubemem_activation.block import fingerprint

    fp: Fingerprint = fingerprint(model, _NoTokenizer())
    rng = torch.Generator().manual_seed(1)
    results = []
    for p in prefix_tokens:
        prefix = torch.randint(5, 32000, (p,), generator=rng).tolist()
        query = torch.randint(5, 32000, (query_tokens,), generator=rng).tolist()
        full = torch.tensor([prefix + query], device=model.device)

        start = time.perf_counter()
        block = from_cache(prefill(model, prefix), prefix, fp, meta={"chat_template": False})
        build_ms = (time.perf_counter() - start) * 1000

        prefill_ms, injected_ms, copied_ms = _ttft(model, block, query, repeats)
        mask = torch.ones_like(full)
        plain = model.generate(input_ids=full, attention_mask=mask, max_new_tokens=new_tokens,
                               do_sample=False, pad_token_id=0)  # fmt: skip
        with block.borrow(model) as cache:
            cached = model.generate(input_ids=full, attention_mask=mask,
                                    max_new_tokens=new_tokens, do_sample=False, pad_token_id=0,
                                    past_key_values=cache)  # fmt: skip
        copy = model.generate(input_ids=full, attention_mask=mask, max_new_tokens=new_tokens,
                              do_sample=False, pad_token_id=0,
                              past_key_values=block.cache(model))  # fmt: skip
        quarter = max(1, p // 4)
        pieces = [prefix[i : i + quarter] for i in range(0, p, quarter)]
        blocks = [from_cache(prefill(model, ids), ids, fp) for ids in pieces]
        composition = {
            s: distance(model, compose(model, _NoTokenizer(), blocks, s), block, query)
            for s in STRATEGIES
        }
        results.append(
            {
                "prefix_tokens": p,
                "ttft_ms_prefill": round(prefill_ms, 2),
                "ttft_ms_injected": round(injected_ms, 2),
                "speedup": round(prefill_ms / injected_ms, 1),
                "ttft_ms_copied": round(copied_ms, 2),
                "speedup_copied": round(prefill_ms / copied_ms, 1),
                "greedy_identical": bool(torch.equal(plain, cached) and torch.equal(plain, copy)),
                "block_build_ms": round(build_ms, 1),
                "block_bytes": block.nbytes,
                "composition": {
                    s: {k: float(f"{v:.3g}") for k, v in d.items()} for s, d in composition.items()
                },
            }
        )
        if progress:
            progress(1)
    return {
        "model_params": params,
        "device": str(model.device),
        "torch_threads": torch.get_num_threads(),
        "query_tokens": query_tokens,
        "results": results,
    }
