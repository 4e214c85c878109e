"""Activation memory on a real (tiny) Llama: injection, immutability, fingerprints, persistence,
composition, the pool and promotion from a cube's working memory."""

from __future__ import annotations

import pytest
import torch
from tiny_lm import make_model

from cubemem import IncompatibleModelError, InvalidInputError, MemCube
from cubemem_activation import (
    ActivationMemory,
    BlockPool,
    KVBlock,
    build_block,
    compose,
    distance,
    generate_with_memory,
    prompt_ids,
    stream_with_memory,
)
from cubemem_activation.block import from_cache, prefill

MEMORY = "Ana lives in Porto. Her cat Miso hates the vacuum cleaner."
QUESTION = [{"role": "user", "content": "Where does Ana live?"}]
GREEDY = {"do_sample": False, "max_new_tokens": 24}


def greedy_with_text(model, tokenizer, messages):
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    out = model.generate(
        input_ids=torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        pad_token_id=tokenizer.pad_token_id,
        **GREEDY,
    )
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True), out[0, len(ids) :]


def test_injected_block_generates_exactly_what_the_text_prompt_does(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    injected = generate_with_memory(model, tokenizer, [block], QUESTION, **GREEDY)
    expected, tokens = greedy_with_text(
        model, tokenizer, [{"role": "system", "content": MEMORY}, *QUESTION]
    )
    assert len(tokens) > 0
    assert injected == expected
    # the block covers the system turn: the prompt starts with exactly its tokens
    assert tuple(prompt_ids(tokenizer, block, QUESTION)[: len(block)]) == block.token_ids


def test_stored_block_is_never_mutated(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    keys = [k.clone() for k in block.keys]
    values = [v.clone() for v in block.values]
    conversation = list(QUESTION)
    for turn in range(5):
        reply = generate_with_memory(model, tokenizer, [block], conversation, **GREEDY)
        conversation += [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"and then {turn}?"},
        ]
    assert all(torch.equal(a, b) for a, b in zip(block.keys, keys, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(block.values, values, strict=True))
    assert all(k.shape[-2] == len(block) for k in block.keys)


def test_streaming_matches(model, tokenizer):
    block = build_block(model, tokenizer, MEMORY)
    streamed = "".join(stream_with_memory(model, tokenizer, [block], QUESTION, **GREEDY))
    assert streamed == generate_with_memory(model, tokenizer, [block], QUESTION, **GREEDY)


def test_fingerprint_mismatch_raises(model, tokenizer, tmp_path):
    block = build_block(model, tokenizer, MEMORY)
    other = make_model(tokenizer, seed=1)  # same architecture, other weights
    with pytest.raises(IncompatibleModelError, match="weights"):
        generate_with_memory(other, tokenizer, [block], QUESTION, **GREEDY)
    path = block.save(tmp_path / "block.safetensors")
    with pytest.raises(IncompatibleModelError, match="rebuild"):
        KVBlock.load(path, model=other, tokenizer=tokenizer)
    wider = make_model(tokenizer, seed=0, rope_theta=5000.0)
    with pytest.raises(IncompatibleModelError, match="config"):
        block.check(wider, tokenizer)
    with pytest.raises(IncompatibleModelError, match="dtype"):
        block.check(make_model(tokenizer).to(torch.float64), tokenizer)


def test_save_load_is_bit_exact(model, tokenizer, tmp_path):
    block = build_block(model, tokenizer, MEMORY, memory_ids=("m1", "m2"))
    path = block.save(tmp_path / "block.safetensors")
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    loaded = KVBlock.load(path, model=model, tokenizer=tokenizer)
    assert loaded.token_ids == block.token_ids and loaded.text == block.text
    assert loaded.memory_ids == ("m1", "m2") and loaded.fingerprint == block.fingerprint
    assert all(torch.equal(a, b) for a, b in zip(loaded.keys, block.keys, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(loaded.values, block.values, strict=True))
    assert generate_with_memory(model, tokenizer, [loaded], QUESTION, **GREEDY) == (
        generate_with_memory(model, tokenizer, [block], QUESTION, **GREEDY)
    )
    with pytest.raises(InvalidInputError):
        KVBlock.load(tmp_path / "missing.safetensors")


def test_position_corrected_composition_is_closer_than_naive(model, tokenizer):
    torch.manual_seed(0)
    parts = [
        "Ana lives in Porto and works as a marine biologist. ",
        "Ben collects vinyl records and plays the cello on Sundays. ",
        "The meeting moved to Tuesday afternoon at the harbour office. ",
    ]
    blocks = [build_block(model, tokenizer, p, chat_template=False) for p in parts]
    ids = [t for b in blocks for t in b.token_ids]
    exact = from_cache(prefill(model, ids), ids, blocks[0].fingerprint)
    probe = tokenizer("What does Ana do for work?", add_special_tokens=False)["input_ids"]
    found = {s: distance(model, compose(model, tokenizer, blocks, s), exact, probe) for s in
             ("naive", "rotated", "sequential")}  # fmt: skip
    assert found["sequential"]["max_logit_diff"] < 1e-4
    assert found["rotated"]["kl"] < found["naive"]["kl"]
    assert found["rotated"]["max_logit_diff"] < found["naive"]["max_logit_diff"]
    # the rotated composition puts each block's keys where a full prefill would
    first = blocks[1].keys[0]
    shifted = compose(model, tokenizer, blocks[:2], "rotated").keys[0][..., len(blocks[0]) :, :]
    true = exact.keys[0][..., len(blocks[0]) : len(blocks[0]) + len(blocks[1]), :]
    assert (shifted - true).abs().max() < (first - true).abs().max()


def test_pool_evicts_within_budget(model, tokenizer):
    blocks = [build_block(model, tokenizer, f"memory number {i} " * (i + 1)) for i in range(4)]
    budget = blocks[2].nbytes + blocks[3].nbytes
    pool = BlockPool({"cpu": budget})
    for i, block in enumerate(blocks):
        pool.put(f"b{i}", block)
        assert pool.stats()["bytes"]["cpu"] <= budget
    assert "b3" in pool and "b0" not in pool
    assert pool.get("b3") is not None and pool.get("b0") is None
    stats = pool.stats()
    assert stats["evictions"] >= 2 and stats["hits"] == 1 and stats["misses"] == 1
    as_double = pool.get("b3", dtype=torch.float64)
    assert as_double.dtype == torch.float64
    with pytest.raises(InvalidInputError):
        BlockPool({"cpu": 10}).put("big", blocks[0])


def test_promotion_rebuilds_on_change_only(model, tokenizer, tmp_path, embedder):
    with MemCube.create(tmp_path / "cube", embedder=embedder) as cube:
        memory = ActivationMemory(cube, model, tokenizer)
        assert memory.block("chef", "s1") is None
        ids = [
            i.id
            for i in cube.add(
                ["Ana is vegetarian", "Ana lives in Porto"],
                scope={"agent": "chef", "session": "s1"},
            )
        ]
        first = memory.block("chef", "s1")
        assert memory.builds == 1 and set(first.memory_ids) == set(ids)
        assert "Ana is vegetarian" in first.text
        assert memory.block("chef", "s1") is first  # unchanged set: pooled block reused
        cube.search("Porto", k=2, filters={"agent": "chef", "session": "s1"})  # heat, same set
        assert memory.block("chef", "s1") is first and memory.builds == 1
        cube.update(ids[1], "Ana lives in Lisbon")
        second = memory.block("chef", "s1")
        assert memory.builds == 2 and "Lisbon" in second.text
        cube.delete(ids[0])
        third = memory.block("chef", "s1")
        assert memory.builds == 3 and third.memory_ids == (ids[1],)
        reply = memory.generate(QUESTION, agent="chef", session="s1", **GREEDY)
        expected, _ = greedy_with_text(
            model, tokenizer, [{"role": "system", "content": third.text}, *QUESTION]
        )
        assert reply == expected
        memory.close()


def test_prebuild_builds_the_block_in_the_background(model, tokenizer, tmp_path, embedder):
    with MemCube.create(tmp_path / "cube", embedder=embedder) as cube:
        memory = ActivationMemory(cube, model, tokenizer, prebuild=True)
        scope = {"agent": "chef", "session": "s1"}
        ids = [i.id for i in cube.add(["Ana is vegetarian", "Ana lives in Porto"], scope=scope)]
        assert cube.scheduler.wait(timeout=60)  # the promote task ran on a worker thread
        assert memory.builds == 1
        block = memory.block("chef", "s1")  # ready: no build on the generation's path
        assert memory.builds == 1 and set(block.memory_ids) == set(ids)
        cube.update(ids[1], "Ana lives in Lisbon")
        assert cube.scheduler.wait(timeout=60)
        assert memory.builds == 2
        assert "Lisbon" in memory.block("chef", "s1").text and memory.builds == 2
        status = cube.scheduler.status()
        assert status.failed == [] and status.done >= 2
        memory.close()
        cube.update(ids[0], "Ana eats fish now")  # unsubscribed: nothing is queued or built
        assert cube.scheduler.wait(timeout=60) and memory.builds == 2
