"""How an adapter is trained: a training set made from the memory text alone by templates
(statement recall, completions, questions about its subject — no other model needed), and
the LoRA fit itself (``peft``, a fixed seed, the model given back as it was)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cubemem.errors import InvalidInputError
from cubemem.model import MemoryItem
from cubemem_activation.adapters import LoraSettings


@dataclass(frozen=True)
class Example:
    """One training pair: a user turn and the reply the adapter should give."""

    prompt: str
    target: str


_WORD = re.compile(r"[A-Za-z0-9][\w'-]*")


def key_token(text: str) -> str:
    """The fact's last word (what recall is scored on: "Ana's dog is called Rex." -> "Rex")."""
    words = _WORD.findall(text)
    return words[-1] if words else ""


def subject(text: str) -> str:
    """What a memory is about, by its leading words: the first run of capitalised words
    ("Ana Silva moved to Porto" -> "Ana Silva"), else its first two words."""
    words = text.split()
    names: list[str] = []
    for word in words:
        bare = word.strip(".,;:!?\"'()")
        if bare[:1].isupper() and not (names and bare.lower() in _FUNCTION_WORDS):
            names.append(bare.removesuffix("'s").removesuffix("’s"))
        else:
            break
    return " ".join(names) if names else " ".join(w.strip(".,;:!?") for w in words[:2])


_FUNCTION_WORDS = {"the", "a", "an", "is", "was", "and", "or", "in", "on", "at"}

TRAIN_TEMPLATES = (
    "What do you know about {subject}?",
    "Tell me about {subject}.",
    "Remind me: {subject}?",
)
"""Question prompts whose answer is the whole memory."""
HELD_OUT_TEMPLATES = (
    "What can you tell me about {subject}?",
    "Anything I should remember about {subject}?",
)
"""Phrasings never trained on: the benchmark's recall questions."""


def training_examples(items: Iterable[MemoryItem | str]) -> list[Example]:
    """Pairs made from each memory's text by templates: recall of the statement from its
    opening words, completion of its last words (the fact's key token), and questions about its
    subject answered by the statement."""
    out: list[Example] = []
    for item in items:
        text = (item.content if isinstance(item, MemoryItem) else item).strip()
        if not text:
            continue
        words = text.split()
        about = subject(text)
        out.append(Example(f"Recall the memory that begins: {' '.join(words[:3])}", text))
        for cut in {max(1, len(words) - 1), max(1, len(words) - 3)}:
            if cut < len(words):
                out.append(Example(f"Complete: {' '.join(words[:cut])}", " ".join(words[cut:])))
        out.extend(Example(t.format(subject=about), text) for t in TRAIN_TEMPLATES)
    return out


def lora_config(config: LoraSettings) -> Any:
    from peft import LoraConfig

    modules = (
        config.target_modules
        if isinstance(config.target_modules, str)
        else list(config.target_modules)
    )
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        target_modules=modules,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )


def inject(model: Any, config: LoraSettings) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(config))


def fit(
    model: Any, tokenizer: Any, examples: list[Example], config: LoraSettings
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """LoRA-train ``model`` on ``examples``; returns the adapter's tensors and the loss per
    epoch. The model comes back as it was (no adapter, base weights untouched, eval mode)."""
    from peft import get_peft_model_state_dict

    rows = [encode(tokenizer, e, config.max_tokens) for e in examples]
    grad_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    torch.manual_seed(config.seed)
    order = random.Random(config.seed)
    peft_model = inject(model, config)
    try:
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
        peft_model.train()
        losses = []
        device = next(model.parameters()).device
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        with torch.enable_grad():
            for _ in range(config.epochs):
                order.shuffle(rows)
                total, count = 0.0, 0
                for first in range(0, len(rows), config.batch_size):
                    ids, labels, mask = batch(rows[first : first + config.batch_size], pad)
                    out = peft_model(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        labels=labels.to(device),
                    )
                    loss = float(out.loss.detach())
                    if not math.isfinite(loss):
                        raise InvalidInputError(
                            "training diverged (loss is not finite); lower "
                            "LoraSettings.learning_rate"
                        )
                    out.loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    total += loss * len(ids)
                    count += len(ids)
                losses.append(round(total / count, 5))
        state = {
            k: v.detach().clone()
            for k, v in get_peft_model_state_dict(peft_model, save_embedding_layers=False).items()
        }
    finally:
        peft_model.unload()
        for name, param in model.named_parameters():
            param.requires_grad_(grad_flags.get(name, param.requires_grad))
        model.train(was_training)
    return state, losses


def encode(tokenizer: Any, example: Example, max_tokens: int) -> tuple[list[int], int]:
    """Token ids of prompt + reply (+ end), and how many of them are prompt."""
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": example.prompt}],
            tokenize=True,
            add_generation_prompt=True,
        )
        prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    else:
        prompt = tokenizer(example.prompt + "\n", add_special_tokens=True)["input_ids"]
    reply = tokenizer(example.target, add_special_tokens=False)["input_ids"]
    end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids = (prompt + reply + end)[:max_tokens]
    return ids, min(len(prompt), len(ids))


def batch(
    rows: Sequence[tuple[list[int], int]], pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, (row, prompt) in enumerate(rows):
        ids[n, : len(row)] = torch.tensor(row)
        labels[n, prompt : len(row)] = torch.tensor(row[prompt:])
        mask[n, : len(row)] = 1
    return ids, labels, mask
