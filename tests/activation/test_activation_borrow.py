"""Borrowing a block's tail: injection without a copy, and every way out of it stays exact."""

from __future__ import annotations

import threading

import pytest
import torch

from cubemem_activation import KVBlock, build_block, generate_with_memory

MEMORY = "Ana lives in Porto. Her cat Miso hates the vacuum cleaner."
QUESTION = [{"role": "user", "content": "Where does Ana live?"}]
GREEDY = {"do_sample": False, "max_new_tokens": 24}


def snapshot(block: KVBlock) -> list[torch.Tensor]:
    return [t.clone() for t in (*block.keys, *block.values)]


def unchanged(block: KVBlock, before: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip((*block.keys, *block.values), before, strict=True))


def next_logits(model, block: KVBlock, cache, probe: list[int]) -> torch.Tensor:
    offset = len(block)
    out = model(
        input_ids=torch.tensor([probe]),
        past_key_values=cache,
        cache_position=torch.arange(offset, offset + len(probe)),
    )
    return out.logits[0, -1]


@torch.inference_mode()
def test_borrowed_cache_shares_the_block_and_writes_only_its_tail(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    before = snapshot(block)
    assert block.headroom > 0
    with block.borrow(model) as cache:
        assert cache.layers[0].keys.data_ptr() == block.keys[0].data_ptr()  # no copy
        borrowed = next_logits(model, block, cache, [5, 6, 7])
        assert cache.get_seq_length() == len(block) + 3
    assert unchanged(block, before)
    assert torch.equal(borrowed, next_logits(model, block, block.cache(model), [5, 6, 7]))


@torch.inference_mode()
def test_a_second_borrower_gets_a_copy_with_the_same_result(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    before = snapshot(block)
    with block.borrow(model) as first, block.borrow(model) as second:
        a = next_logits(model, block, first, [5, 6, 7])
        b = next_logits(model, block, second, [5, 6, 7])
        assert first.layers[0].keys.data_ptr() == block.keys[0].data_ptr()
        assert second.layers[0].keys.data_ptr() != block.keys[0].data_ptr()  # its own copy
    assert torch.equal(a, b)
    assert unchanged(block, before)


def test_generations_in_threads_agree_and_leave_the_block_alone(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    before = snapshot(block)
    expected = generate_with_memory(model, tokenizer, [block], QUESTION, **GREEDY)
    replies: list[str] = []

    def ask() -> None:
        replies.append(generate_with_memory(model, tokenizer, [block], QUESTION, **GREEDY))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert replies == [expected] * 4
    assert unchanged(block, before)


def test_outgrowing_the_tail_moves_to_a_copy_and_stays_exact(model, tokenizer):
    roomy = build_block(model, tokenizer, MEMORY)
    tight = build_block(model, tokenizer, MEMORY, headroom=3)
    before = snapshot(tight)
    assert tight.headroom == 3
    long = {"do_sample": False, "max_new_tokens": 40}
    assert generate_with_memory(model, tokenizer, [tight], QUESTION, **long) == (
        generate_with_memory(model, tokenizer, [roomy], QUESTION, **long)
    )
    assert unchanged(tight, before)


@torch.inference_mode()
def test_crop_below_the_block_never_overwrites_it(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    before = snapshot(block)
    with block.borrow(model) as cache:
        next_logits(model, block, cache, [5, 6])
        cache.crop(-6)  # the 2 new tokens and 4 of the block's own
        assert cache.get_seq_length() == len(block) - 4
        out = model(
            input_ids=torch.tensor([[9, 9, 9, 9, 9, 9]]),
            past_key_values=cache,
            cache_position=torch.arange(len(block) - 4, len(block) + 2),
        )
        assert out.logits.shape[1] == 6
    assert unchanged(block, before)


@torch.inference_mode()
def test_a_returned_cache_refuses_further_use(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    with block.borrow(model) as cache:
        pass
    with pytest.raises(RuntimeError, match=r"KVBlock\.cache"):
        next_logits(model, block, cache, [5])
    # the tail is free again: the next borrower shares the block
    with block.borrow(model) as again:
        assert again.layers[0].keys.data_ptr() == block.keys[0].data_ptr()


def test_blocks_without_headroom_are_injected_as_copies(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY, headroom=0)
    assert block.headroom == 0
    roomy = build_block(model, tokenizer, MEMORY)
    assert roomy.nbytes > block.nbytes  # the tail is counted
    assert generate_with_memory(model, tokenizer, [block], QUESTION, **GREEDY) == (
        generate_with_memory(model, tokenizer, [roomy], QUESTION, **GREEDY)
    )


def test_moving_a_block_keeps_its_tail(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    assert block.to("cpu") is block  # nothing to move: no copy
    wide = block.to(dtype=torch.float64)
    assert wide.headroom == block.headroom and wide.dtype == torch.float64
    assert all(torch.equal(a.double(), b) for a, b in zip(block.keys, wide.keys, strict=True))
    assert wide.keys[0].data_ptr() != block.keys[0].data_ptr()
