"""Generation with memory injected as KV cache: ``generate_with_memory`` and a streaming twin.

The prompt is what it would be with the memory as text — ``[{"role": "system", "content":
block.text}, *messages]`` through the chat template — but the block's tokens are not computed
again: generation borrows the block's cache (``KVBlock.borrow``: its new tokens go into the
block's spare tail, nothing is copied) and only processes the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from transformers import TextIteratorStreamer

from cubemem.errors import InvalidInputError
from cubemem_activation.block import KVBlock
from cubemem_activation.compose import Strategy, compose

Message = dict[str, str]


def prompt_ids(tokenizer: Any, block: KVBlock | None, messages: Sequence[Message]) -> list[int]:
    """The whole prompt's tokens; a block's tokens are its prefix (checked)."""
    if not messages:
        raise InvalidInputError("messages is empty; pass at least the user's message")
    if block is None:
        return _template(tokenizer, list(messages))
    if block.meta.get("chat_template", False):
        ids = _template(tokenizer, [{"role": "system", "content": block.text}, *messages])
    else:
        rest = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        ids = [*block.token_ids, *tokenizer(rest, add_special_tokens=False)["input_ids"]]
    if tuple(ids[: len(block)]) != block.token_ids:
        raise InvalidInputError(
            "the prompt does not start with the block's tokens (the chat template renders the "
            "system turn differently in context); build the block with build_block(..., "
            "chat_template=True) for this tokenizer"
        )
    return ids


def _template(tokenizer: Any, messages: list[Message]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _prepare(
    model: Any,
    tokenizer: Any,
    blocks: Sequence[KVBlock],
    messages: Sequence[Message],
    strategy: Strategy,
) -> tuple[dict[str, Any], int, KVBlock | None]:
    block = compose(model, tokenizer, list(blocks), strategy) if blocks else None
    ids = prompt_ids(tokenizer, block, messages)
    input_ids = torch.tensor([ids], device=model.device)
    inputs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
    }
    return inputs, len(ids), block


def _borrowed(model: Any, block: KVBlock | None) -> AbstractContextManager[Any]:
    return block.borrow(model) if block is not None else nullcontext()


@torch.inference_mode()
def generate_with_memory(
    model: Any,
    tokenizer: Any,
    blocks: Sequence[KVBlock],
    messages: Sequence[Message],
    *,
    strategy: Strategy = "rotated",
    **gen_kwargs: Any,
) -> str:
    """Generate a reply to ``messages`` with ``blocks`` as the (cached) system memory."""
    inputs, n, block = _prepare(model, tokenizer, blocks, messages, strategy)
    gen_kwargs.setdefault("max_new_tokens", 64)
    gen_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id or tokenizer.eos_token_id)
    with _borrowed(model, block) as cache:  # checks on exit that the block is unchanged
        output = model.generate(**inputs, past_key_values=cache, **gen_kwargs)
    return tokenizer.decode(output[0, n:], skip_special_tokens=True)


def stream_with_memory(
    model: Any,
    tokenizer: Any,
    blocks: Sequence[KVBlock],
    messages: Sequence[Message],
    *,
    strategy: Strategy = "rotated",
    **gen_kwargs: Any,
) -> Iterator[str]:
    """Like ``generate_with_memory``, yielding text as it is generated."""
    inputs, _, block = _prepare(model, tokenizer, blocks, messages, strategy)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    gen_kwargs.setdefault("max_new_tokens", 64)
    gen_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id or tokenizer.eos_token_id)
    errors: list[BaseException] = []

    with _borrowed(model, block) as cache:

        def run() -> None:
            try:
                with torch.inference_mode():
                    model.generate(**inputs, past_key_values=cache, streamer=streamer, **gen_kwargs)
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield from streamer
        finally:
            thread.join()  # the borrowed cache goes back only once generation has stopped
    if errors:
        raise errors[0]
