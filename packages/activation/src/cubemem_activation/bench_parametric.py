"""``cubemem bench parametric``: recall of memorised facts by an adapted model, on phrasings it
was never trained on, against the base model and against the facts as text in the prompt.

Facts are generated (``Name``'s attribute is ``value``), written to a cube, and an adapter is
trained from them with ``ParametricMemory`` (its template training set). The model is tiny and
built here — a Llama from a config with random weights and a byte-level BPE tokenizer trained
on the facts and the templates — so it runs on a CPU in seconds and needs no download. Each fact
is then asked with each held-out template; a reply *recalls* it when it contains the fact's key
token (its last word) as a word. Three ways:

- ``base``: the model as built, the question alone;
- ``plaintext``: the base model with every fact as a system turn (what plaintext memory costs
  in prompt tokens every turn);
- ``adapter``: the adapted model, the question alone.

A random-weights model cannot read, so ``plaintext`` measures only the prompt's cost here; with
a pretrained model it is the baseline to beat (``--model`` is not offered yet: this machine has
no model hub).
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from cubemem.cube import MemCube
from cubemem.errors import InvalidInputError
from cubemem.render import render_memories
from cubemem_activation.block import memory_prompt_ids
from cubemem_activation.parametric import (
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    LoraSettings,
    ParametricMemory,
    key_token,
    subject,
    training_examples,
)

NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea",
         "Milo", "Nour", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tova"]  # fmt: skip
FACTS = [
    ("{name}'s favourite colour is {value}.", ["teal", "amber", "violet", "crimson", "olive"]),
    ("{name} lives in {value}.", ["Porto", "Kyoto", "Nairobi", "Oslo", "Lima", "Hanoi"]),
    ("{name} works as a {value}.", ["baker", "pilot", "nurse", "welder", "chemist", "tailor"]),
    ("{name} plays the {value}.", ["cello", "banjo", "oboe", "harp", "tuba", "sitar"]),
    ("{name}'s dog is called {value}.", ["Rex", "Biscuit", "Nala", "Pixel", "Mango", "Otto"]),
]
TINY_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
               "lm_head")  # fmt: skip
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_facts(count: int, seed: int = 0) -> list[str]:
    """``count`` facts about distinct people, each with its own key token."""
    if not 1 <= count <= len(NAMES):
        raise InvalidInputError(f"--facts must be from 1 to {len(NAMES)}, got {count}")
    rng = random.Random(seed)
    facts = []
    for n, name in enumerate(NAMES[:count]):
        template, values = FACTS[n % len(FACTS)]
        facts.append(template.format(name=name, value=rng.choice(values)))
    return facts


def tiny_model(corpus: list[str], seed: int = 0) -> tuple[Any, Any]:
    """A ~0.2M-parameter Llama with random weights and a BPE tokenizer trained on ``corpus``."""
    specials = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus * 5,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<unk>",
    )  # fmt: skip
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval(), tokenizer


def recalled(reply: str, fact: str) -> bool:
    return re.search(rf"\b{re.escape(key_token(fact))}\b", reply) is not None


@torch.inference_mode()
def answer(model: Any, tokenizer: Any, messages: list[dict[str, str]], new_tokens: int) -> str:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    tensor = torch.tensor([ids], device=model.device)
    out = model.generate(
        input_ids=tensor,
        attention_mask=torch.ones_like(tensor),
        max_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return str(tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))


def run(
    facts: int = 12,
    *,
    epochs: int = 30,
    learning_rate: float = 3e-3,
    rank: int = 32,
    seed: int = 0,
    new_tokens: int = 24,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    texts = make_facts(facts, seed)
    questions = [t.format(subject=subject(f)) for t in HELD_OUT_TEMPLATES for f in texts]
    corpus = [*texts, *(e.prompt for e in training_examples(texts)), *questions]
    model, tokenizer = tiny_model(corpus, seed)
    config = LoraSettings(
        rank=rank,
        alpha=2 * rank,
        epochs=epochs,
        learning_rate=learning_rate,
        seed=seed,
        target_modules=TINY_LAYERS,
    )
    from cubemem.bench.scale import RandomEmbedder  # no model download: search is not measured

    with tempfile.TemporaryDirectory() as tmp:
        cube = MemCube.create(Path(tmp) / "cube", embedder=RandomEmbedder())
        cube.add(texts)
        items = list(cube.iter())
        memory = ParametricMemory(cube, model, tokenizer)
        start = time.perf_counter()
        adapter = memory.train(items, name="bench", config=config)
        train_s = time.perf_counter() - start
        system = render_memories(items, max_chars=100_000)
        prompt_tokens = len(memory_prompt_ids(tokenizer, system))

        def score(with_text: bool, templates: tuple[str, ...]) -> float:
            hits = total = 0
            for fact in texts:
                for template in templates:
                    question = [{"role": "user", "content": template.format(subject=subject(fact))}]
                    if with_text:
                        question = [{"role": "system", "content": system}, *question]
                    reply = answer(model, tokenizer, question, new_tokens)
                    hits += recalled(reply, fact)
                    total += 1
                    if progress:
                        progress(1)
            return round(hits / total, 3)

        results = {
            "base": score(False, HELD_OUT_TEMPLATES),
            "plaintext": score(True, HELD_OUT_TEMPLATES),
        }
        with memory.using(adapter.id):
            results["adapter"] = score(False, HELD_OUT_TEMPLATES)
            seen = score(False, TRAIN_TEMPLATES[:1])
        adapter_params = _numel(adapter.path)
        cube.close()
    return {
        "benchmark": "parametric",
        "model": "tiny Llama from a config (random weights), BPE tokenizer trained in code",
        "model_params": sum(p.numel() for p in model.parameters()),
        "device": str(model.device),
        "facts": facts,
        "held_out_questions": facts * len(HELD_OUT_TEMPLATES),
        "recall_held_out": results,
        "recall_trained_phrasing_adapter": seen,
        "prompt_tokens_saved_per_turn": prompt_tokens,
        "training": {
            "examples": adapter.examples,
            "epochs": epochs,
            "learning_rate": learning_rate,
            "rank": config.rank,
            "seconds": round(train_s, 2),
            "seconds_per_memory": round(train_s / facts, 3),
            "loss_first": adapter.losses[0],
            "loss_last": adapter.losses[-1],
            "adapter_params": adapter_params,
        },
        "loss_curve": list(adapter.losses),
    }


def _numel(path: Path | None) -> int:
    """Numbers in an adapter file."""
    from safetensors import safe_open

    if path is None:
        return 0
    total = 0
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            count = 1
            for dim in f.get_slice(key).get_shape():
                count *= dim
            total += count
    return total
