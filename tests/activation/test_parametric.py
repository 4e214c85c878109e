"""Parametric memory on a tiny real model (built from a config, tokenizer trained in code): a
LoRA adapter trained with peft from a cube's memories lowers their loss and raises their
likelihood, round-trips bit-exact, is refused by another base model, goes stale when a covered
memory changes, and serves generation beside KV blocks; the tiers move memories between the
three kinds by usage, in each memory's history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import torch
from peft import get_peft_model_state_dict
from tiny_lm import make_model

from cubemem import IncompatibleModelError, InvalidBlockError, Kind, MemCube
from cubemem.model import TIER_KEY
from cubemem_activation import (
    ActivationMemory,
    LoraSettings,
    ParametricMemory,
    TierPolicy,
    training_examples,
)
from cubemem_activation.adapters import read_adapter
from cubemem_activation.training import HELD_OUT_TEMPLATES, encode, subject

FACTS = [
    "Ana lives in Porto and works as a marine biologist.",
    "Ben plays the cello on Sundays.",
    "Miso the cat hates the vacuum cleaner.",
    "The team meeting moved to Tuesday afternoon.",
]
LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
QUICK = LoraSettings(epochs=20, learning_rate=1e-2, seed=0, target_modules=LAYERS)


@pytest.fixture
def cube(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        scope = {"agent": "bot", "session": "s1"}
        cube.add([{"content": f, "tags": ["profile"], "scope": scope} for f in FACTS])
        yield cube


@pytest.fixture
def model(tokenizer):
    return make_model(tokenizer)  # each test its own: adapters are injected into the object


def statement_nll(model, tokenizer, texts: list[str]) -> float:
    """Mean loss of each memory's text as the reply to a question the adapter never saw."""
    losses = []
    for text in texts:
        prompt = HELD_OUT_TEMPLATES[0].format(subject=subject(text))
        ids, start = encode(tokenizer, type("E", (), {"prompt": prompt, "target": text})(), 256)
        tensor = torch.tensor([ids])
        labels = tensor.clone()
        labels[0, :start] = -100
        with torch.no_grad():
            losses.append(float(model(input_ids=tensor, labels=labels).loss))
    return sum(losses) / len(losses)


def test_training_lowers_loss_and_raises_the_memories_likelihood(cube, model, tokenizer):
    memory = ParametricMemory(cube, model, tokenizer)
    chosen = memory.select(tags=["profile"])
    assert sorted(i.content for i in chosen) == sorted(FACTS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base_nll = statement_nll(model, tokenizer, FACTS)
    adapter = memory.train(chosen, name="profile", config=QUICK)
    assert len(adapter.losses) == QUICK.epochs and adapter.losses[-1] < 0.5 * adapter.losses[0]
    assert adapter.examples == len(training_examples(chosen)) and not adapter.stale
    # training left the model as it was: same parameters, bit for bit, no adapter
    assert {k: v for k, v in model.state_dict().items()}.keys() == before.keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with memory.using(adapter.id) as loaded:
        assert loaded.id == adapter.id and memory.loaded == loaded
        adapted_nll = statement_nll(model, tokenizer, FACTS)
    assert memory.loaded is None
    assert statement_nll(model, tokenizer, FACTS) == pytest.approx(base_nll)  # unloaded
    assert adapted_nll < base_nll - 0.5, (base_nll, adapted_nll)


def test_adapters_round_trip_bit_exact_and_refuse_other_models(cube, model, tokenizer):
    memory = ParametricMemory(cube, model, tokenizer)
    adapter = memory.train(memory.select(tags=["profile"]), config=QUICK)
    _, saved = read_adapter(adapter.path)
    memory.load(adapter.id)
    live = get_peft_model_state_dict(memory._peft, save_embedding_layers=False)
    assert live.keys() == saved.keys()
    assert all(torch.equal(live[k].cpu(), saved[k]) for k in saved)
    memory.unload()
    listed = memory.adapters()
    assert [a.id for a in listed] == [adapter.id] and listed[0].losses == adapter.losses
    assert listed[0].base == adapter.base and listed[0].config == QUICK
    other = ParametricMemory(cube, make_model(tokenizer, seed=1), tokenizer)
    with pytest.raises(IncompatibleModelError, match="another base model"):
        other.load(adapter.id)
    raw = bytearray(adapter.path.read_bytes())
    raw[-3] ^= 0xFF
    adapter.path.write_bytes(bytes(raw))
    with pytest.raises(InvalidBlockError, match="integrity"):
        memory.load(adapter.id)
    memory.delete(adapter.id)
    assert memory.adapters() == []


def test_a_covered_memory_edited_or_deleted_makes_the_adapter_stale(cube, model, tokenizer):
    memory = ParametricMemory(cube, model, tokenizer)
    chosen = memory.select(tags=["profile"])
    adapter = memory.train(chosen, config=LoraSettings(epochs=2))
    ben = next(i for i in chosen if i.content.startswith("Ben"))
    cube.maintenance.set_kind(
        ben.id, Kind.PARAMETRIC, note="parametric: test"
    )  # a move keeps the text
    assert not memory.get(adapter.id).stale
    cube.update(ben.id, "Ben plays the viola on Sundays.")
    assert memory.get(adapter.id).stale
    cube.update(ben.id, "Ben plays the cello on Sundays.")  # the trained text again
    assert not memory.get(adapter.id).stale
    cube.delete(ben.id)
    assert memory.adapters()[0].stale


def test_generation_with_an_adapter_and_blocks_on_top(cube, model, tokenizer):
    from cubemem_langchain.local import MemCubeLocalChatModel
    from cubemem_llamaindex.local import MemCubeLocalLLM

    memory = ParametricMemory(cube, model, tokenizer)
    adapter = memory.train(memory.select(tags=["profile"])[:2], config=QUICK)
    for fact in FACTS:  # every memory hot for this session
        cube.search(fact, k=1, filters={"agent": "bot", "session": "s1"})
    active = ActivationMemory(cube, model, tokenizer, parametric=memory)
    plain = active.block("bot", "s1")
    assert plain is not None and len(plain.memory_ids) == len(FACTS)
    memory.load(adapter.id)
    block = active.block("bot", "s1")  # rebuilt on the adapted model, without what it learned
    assert set(block.memory_ids) == set(plain.memory_ids) - set(adapter.memory_ids)
    assert len(block) < len(plain) and block.fingerprint != plain.fingerprint
    question = [{"role": "user", "content": "Where does Ana live?"}]
    direct = active.generate(question, agent="bot", session="s1", max_new_tokens=8)
    chat = MemCubeLocalChatModel(memory=active, agent="bot", session="s1", max_new_tokens=8)
    assert chat.invoke("Where does Ana live?").content == direct
    llm = MemCubeLocalLLM(memory=active, agent="bot", session="s1", max_new_tokens=8)
    assert isinstance(llm.complete("Where does Ana live?").text, str)
    memory.unload()
    assert active.block("bot", "s1").memory_ids == plain.memory_ids


def test_tiers_move_memories_by_usage_and_record_each_move(cube, model, tokenizer):
    policy = TierPolicy(hot_hits=2, stable_hits=4, min_memories=2, adapter_name="tiers")
    memory = ParametricMemory(cube, model, tokenizer)
    items = {i.content: i for i in cube.iter()}
    stable = [items[f] for f in FACTS[:3]]
    for item in stable:
        for _ in range(4):
            cube.search(item.content, k=1)
    for _ in range(2):
        cube.search(FACTS[3], k=1)
    now = datetime.now(UTC)

    first = memory.migrate(policy, now=now, config=QUICK)  # all hot, none stable yet
    assert {to for _, _, to in first.moved} == {Kind.ACTIVATION} and len(first.moved) == 4
    assert first.trained is None and memory.adapters() == []

    later = memory.migrate(policy, now=now + timedelta(days=8), config=QUICK)
    assert later.trained is not None
    assert sorted(later.trained.memory_ids) == sorted(i.id for i in stable)
    assert cube.get(items[FACTS[3]].id).kind is Kind.PLAINTEXT  # cooled: demoted
    assert all(cube.get(i.id).kind is Kind.PARAMETRIC for i in stable)
    assert memory.migrate(policy, now=now + timedelta(days=8), config=QUICK).trained is None

    cold = memory.migrate(policy, now=now + timedelta(days=60), config=QUICK)
    assert cold.removed == [later.trained.id] and memory.adapters() == []
    history = cube.history(stable[0].id)
    assert [v.kind for v in history] == [
        Kind.PLAINTEXT, Kind.ACTIVATION, Kind.PARAMETRIC, Kind.PLAINTEXT
    ]  # fmt: skip
    assert history[2].metadata[TIER_KEY].startswith("parametric: 4 hits")
    assert {v.content for v in history} == {stable[0].content}
    found = cube.search(stable[0].content, k=1)  # searchable as text throughout
    assert found[0].item.id == stable[0].id


def test_a_generation_waits_for_training_on_the_same_model(cube, model, tokenizer):
    """Training injects LoRA layers into the model object; a generation through
    ActivationMemory on another thread runs before or after it, never on the half-trained
    model, and so answers exactly as the base model does."""
    import threading

    memory = ParametricMemory(cube, model, tokenizer)
    active = ActivationMemory(cube, model, tokenizer, parametric=memory)
    question = [{"role": "user", "content": "Where does Ana live?"}]
    expected = active.generate(question, agent="bot", session="s1", max_new_tokens=12)
    replies: list[str] = []
    training = threading.Thread(
        target=memory.train, args=(memory.select(tags=["profile"]),), kwargs={"config": QUICK}
    )
    training.start()
    while training.is_alive():
        replies.append(active.generate(question, agent="bot", session="s1", max_new_tokens=12))
    training.join()
    assert replies and set(replies) == {expected}


def test_the_scheduler_migrates_after_each_lifecycle_sweep(tmp_path, embedder, model, tokenizer):
    import time

    from cubemem import Settings

    settings = Settings(lifecycle_interval_s=0.2)
    with MemCube.create(tmp_path / "s", embedder=embedder, settings=settings) as cube:
        cube.add(FACTS)
        stable = [cube.search(fact, k=1)[0].item.id for fact in FACTS[:3]]
        for fact in FACTS[:3]:
            for _ in range(4):
                cube.search(fact, k=1)
        memory = ParametricMemory(cube, model, tokenizer)
        policy = TierPolicy(hot_hits=2, stable_hits=4, stable_for=timedelta(0), min_memories=2)
        stop = memory.schedule(policy, config=QUICK)
        deadline = time.monotonic() + 120
        while not memory.adapters() and time.monotonic() < deadline:
            time.sleep(0.2)
        stop()
        adapters = memory.adapters()
        assert len(adapters) == 1 and sorted(adapters[0].memory_ids) == sorted(stable)
        assert all(cube.get(i).kind is Kind.PARAMETRIC for i in stable)


def test_forgetting_a_memory_drops_its_kv_block_and_the_adapter_trained_on_it(
    cube, model, tokenizer
):
    """A forget reaches what was derived on the model side: the KV block that holds the text
    leaves the pool at once (the next one is built without it), and an adapter trained on it
    is deleted by the sweep's ``prune_forgotten`` (``migrate`` then trains anew from what is
    left); an adapter that never saw it stays."""
    memory = ParametricMemory(cube, model, tokenizer)
    chosen = memory.select(tags=["profile"])
    cat = next(i for i in chosen if i.content.startswith("Miso"))
    others = [i for i in chosen if i.id != cat.id]
    with_cat = memory.train([cat, others[0]], config=QUICK)
    without_cat = memory.train(others[1:3], config=QUICK)
    for fact in FACTS:  # every memory hot for this session
        cube.search(fact, k=1, filters={"agent": "bot", "session": "s1"})
    active = ActivationMemory(cube, model, tokenizer)
    assert cat.id in active.block("bot", "s1").memory_ids
    assert active.pool.stats()["blocks"] == 1
    cube.forget([cat.id])
    assert active.pool.stats()["blocks"] == 0  # the block with the forgotten text is gone now
    after = active.block("bot", "s1")
    assert cat.id not in after.memory_ids and "Miso" not in after.text
    assert memory.get(with_cat.id).stale and not memory.get(without_cat.id).stale
    assert memory.prune_forgotten() == [with_cat.id]
    assert [a.id for a in memory.adapters()] == [without_cat.id]
    files = [p.name for p in (cube.maintenance.context.folder / "parametric").iterdir()]
    assert not any(with_cat.id in name for name in files)
    active.close()
