"""KV blocks: a text's keys and values for one model, with the fingerprint of that model.

A block is immutable once built: no number of generations changes it. Its tensors are views
into buffers with spare room after the block's tokens (the *tail*, ``HEADROOM`` tokens); one
generation at a time borrows that tail (``KVBlock.borrow``) and writes its new tokens there,
so injecting a block copies nothing. A second concurrent generation, or one that outgrows the
tail, gets a copy instead (``KVBlock.cache``). Blocks persist as safetensors (tensors + a JSON
header), never pickle; loading checks the fingerprint against the model it is meant for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import save_file
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from cubemem.errors import IncompatibleModelError, InvalidBlockError, InvalidInputError
from cubemem_activation.block_file import FORMAT_VERSION, digest, read_checked
from cubemem_activation.fingerprint import Fingerprint, fingerprint
from cubemem_activation.tail import Pieces, Tail, TailLayer, with_tail

__all__ = ["FORMAT_VERSION", "HEADROOM", "Fingerprint", "KVBlock", "build_block", "fingerprint"]

HEADROOM = 256
"""Tokens of spare room after a block, for the prompt and reply of the generation borrowing it."""


@dataclass(frozen=True)
class KVBlock:
    """The keys/values of ``token_ids`` for one model, per layer ``[1, heads, seq, head_dim]``.

    Make blocks with ``build_block``, ``from_cache``, ``KVBlock.from_tensors`` or
    ``KVBlock.load`` (they give it a tail to lend); a block made directly has none and is
    always injected as a copy.
    """

    token_ids: tuple[int, ...]
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    fingerprint: Fingerprint
    text: str = ""
    memory_ids: tuple[str, ...] = ()
    built_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    _tail: Tail | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_tensors(
        cls,
        token_ids: Sequence[int],
        keys: Sequence[Pieces],
        values: Sequence[Pieces],
        fingerprint: Fingerprint,
        *,
        headroom: int = HEADROOM,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **fields: Any,
    ) -> KVBlock:
        """A block over copies of ``keys``/``values`` (per layer a tensor, or pieces joined
        along the sequence axis; on ``device`` as ``dtype`` if given) with ``headroom`` tokens
        of tail."""
        keys, values, tail = with_tail(keys, values, headroom, device, dtype)
        return cls(tuple(token_ids), keys, values, fingerprint, _tail=tail, **fields)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def headroom(self) -> int:
        """Tokens a borrowing generation can add before it has to copy the block."""
        return 0 if self._tail is None else self._tail.keys[0].shape[-2] - len(self)

    @property
    def nbytes(self) -> int:
        """Bytes held, the tail included."""
        held = self._tail or self
        tensors = (*held.keys, *held.values)
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.keys[0].dtype

    def check(self, model: Any, tokenizer: Any) -> None:
        """Raise ``IncompatibleModelError`` unless this block was built by this model."""
        other = fingerprint(model, tokenizer)
        wrong = self.fingerprint.mismatch(other)
        if wrong:
            raise IncompatibleModelError(
                f"this KV block was built for another model ({', '.join(wrong)} differ); "
                "rebuild it with build_block for the model you are using"
            )

    def cache(self, model: Any) -> DynamicCache:
        """A fresh ``DynamicCache`` over the block, copy-on-write, to keep or use anywhere.

        Each layer starts out *referencing* the block's tensors; the first token generated
        concatenates onto them, which allocates new tensors, so the cache copies the block
        exactly once and generation never writes into it. ``borrow`` avoids even that copy.
        """
        cache = DynamicCache(config=model.config)
        while len(cache.layers) < len(self.keys):  # a config without layer types
            cache.layers.append(DynamicLayer())
        layers = cast(list[DynamicLayer], cache.layers)  # attention layers (keys and values)
        for layer, k, v in zip(layers, self.keys, self.values, strict=False):
            k, v = k.to(model.device), v.to(model.device)
            layer.lazy_initialization(k, v)
            layer.keys, layer.values = k, v
        return cache

    @contextmanager
    def borrow(self, model: Any) -> Iterator[DynamicCache]:
        """A cache over the block for one generation, copying nothing when it can.

        While the ``with`` is open the generation's tokens go into the block's tail (the
        block's own positions are never written). If another generation holds the tail, the
        block has none, sits on another device than ``model``, or the model's cache has layer
        types other than plain full attention, this is ``cache(model)``: a copy-on-write cache.
        The cache must not be used after the ``with``; ``update`` raises if it is. On exit the
        block is checked unchanged (``RuntimeError`` otherwise).
        """
        edges = self.edges()
        cache = DynamicCache(config=model.config)
        tail = self._tail
        lent = (
            tail is not None
            and self.device == model.device
            and all(type(layer) is DynamicLayer for layer in cache.layers)
            and tail.lock.acquire(blocking=False)
        )
        if not lent:
            yield self.cache(model)
            self.assert_intact(edges)
            return
        assert tail is not None
        layers = [TailLayer(k, v, len(self)) for k, v in zip(tail.keys, tail.values, strict=True)]
        cache.layers = list(layers)
        try:
            yield cache
        finally:
            for layer in layers:
                layer.give_back()
            tail.lock.release()
        self.assert_intact(edges)

    def edges(self) -> tuple[torch.Tensor, ...]:
        """Copies of each layer's first and last cached position: a cheap change detector."""
        rows = [0, len(self) - 1] if len(self) else []
        return tuple(t[..., rows, :].clone() for t in (*self.keys, *self.values))

    def assert_intact(self, edges: tuple[torch.Tensor, ...]) -> None:
        """Raise unless the block's edges are what ``edges()`` returned before a generation."""
        if any(not torch.equal(a, b) for a, b in zip(self.edges(), edges, strict=True)):
            raise RuntimeError(
                "generation wrote into a stored KV block; this transformers cache updates in "
                "place — please report it (cubemem-activation expects copy-on-write caches)"
            )

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> KVBlock:
        """This block on ``device`` as ``dtype``: itself if it is there already, else a copy."""
        if (device is None or torch.device(device) == self.device) and dtype in (None, self.dtype):
            return self
        return KVBlock.from_tensors(
            self.token_ids,
            self.keys,
            self.values,
            self.fingerprint,
            headroom=self.headroom,
            device=device,
            dtype=dtype,
            text=self.text,
            memory_ids=self.memory_ids,
            built_s=self.built_s,
            meta=dict(self.meta),
        )

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the block as safetensors; the header holds ids, text and fingerprint."""
        path = Path(path)
        tensors = {"token_ids": torch.tensor(self.token_ids, dtype=torch.int64)}
        for i, (k, v) in enumerate(zip(self.keys, self.values, strict=True)):
            tensors[f"layer.{i}.keys"] = k.detach().contiguous().cpu()
            tensors[f"layer.{i}.values"] = v.detach().contiguous().cpu()
        header = {
            "format": str(FORMAT_VERSION),
            "fingerprint": json.dumps(self.fingerprint.__dict__),
            "text": self.text,
            "memory_ids": json.dumps(list(self.memory_ids)),
            "built_s": repr(self.built_s),
            "meta": json.dumps(self.meta),
        }
        header["digest"] = digest(header, tensors)
        save_file(tensors, str(path), metadata=header)
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        model: Any | None = None,
        tokenizer: Any | None = None,
        device: str | torch.device = "cpu",
        headroom: int = HEADROOM,
    ) -> KVBlock:
        """Read a saved block; with ``model`` and ``tokenizer`` its fingerprint must match.

        The file is checked before anything is used: its digest (over tensors, shapes, dtype,
        token ids, text, memory ids and fingerprint), one keys and one values tensor per layer
        with the block's length, one dtype — and, with a tokenizer, that the text tokenizes to
        the block's token ids (a cache under someone else's text is refused). Any fault is
        ``InvalidBlockError``; another model is ``IncompatibleModelError``.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"no KV block file at {path}")
        try:
            header, tensors = read_checked(path)
            token_ids = tensors["token_ids"].tolist()
            layers = len(tensors) // 2
            block = cls.from_tensors(
                token_ids,
                [tensors[f"layer.{i}.keys"] for i in range(layers)],
                [tensors[f"layer.{i}.values"] for i in range(layers)],
                Fingerprint(**json.loads(header["fingerprint"])),
                headroom=headroom,
                device=device,
                text=header["text"],
                memory_ids=tuple(json.loads(header["memory_ids"])),
                built_s=float(header.get("built_s", "0")),
                meta=json.loads(header.get("meta", "{}")),
            )
        except InvalidBlockError:
            raise
        except Exception as exc:  # safetensors, json, torch: all mean a malformed file
            raise InvalidBlockError(f"{path} is not a readable KV block: {exc}") from None
        if model is not None:
            if tokenizer is None:
                raise InvalidInputError("pass the tokenizer too: the fingerprint covers it")
            block.check(model, tokenizer)
        if (
            tokenizer is not None
            and block.text
            and (memory_prompt_ids(tokenizer, block.text) != list(block.token_ids))
        ):
            raise InvalidBlockError(
                f"{path}: the block's tokens are not its text's; its cache does not belong to "
                "the memory it names — rebuild it"
            )
        return block


def memory_prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """The tokens a block of memory ``text`` covers: the chat template's system turn."""
    ids = tokenizer.apply_chat_template(
        [{"role": "system", "content": text}], tokenize=True, add_generation_prompt=False
    )
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


@torch.inference_mode()
def prefill(model: Any, token_ids: list[int], past: DynamicCache | None = None) -> DynamicCache:
    """Run ``token_ids`` through the model (after ``past``) and return the cache."""
    cache = past if past is not None else DynamicCache(config=model.config)
    offset = cache.get_seq_length()
    input_ids = torch.tensor([token_ids], device=model.device)
    positions = torch.arange(offset, offset + len(token_ids), device=model.device)
    model(input_ids=input_ids, past_key_values=cache, use_cache=True, cache_position=positions)
    return cache


def from_cache(
    cache: DynamicCache,
    token_ids: list[int],
    fp: Fingerprint,
    *,
    text: str = "",
    memory_ids: tuple[str, ...] = (),
    built_s: float = 0.0,
    meta: dict[str, Any] | None = None,
    headroom: int = HEADROOM,
) -> KVBlock:
    """The block of ``token_ids`` from the cache a prefill of them left (copied)."""
    return KVBlock.from_tensors(
        token_ids,
        [_tensor(layer.keys).detach() for layer in cast(list[DynamicLayer], cache.layers)],
        [_tensor(layer.values).detach() for layer in cast(list[DynamicLayer], cache.layers)],
        fp,
        headroom=headroom,
        text=text,
        memory_ids=tuple(memory_ids),
        built_s=built_s,
        meta=meta or {},
    )


def build_block(
    model: Any,
    tokenizer: Any,
    text: str,
    *,
    memory_ids: tuple[str, ...] = (),
    chat_template: bool = True,
    headroom: int = HEADROOM,
) -> KVBlock:
    """Prefill ``text`` once and keep its KV cache.

    With ``chat_template=True`` (the default) the block is the system turn holding ``text``, so
    a prompt made with ``[{"role": "system", "content": text}, *messages]`` starts with exactly
    these tokens. ``chat_template=False`` caches the bare text (for composing segments).
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("a KV block needs non-empty text")
    if chat_template:
        ids = memory_prompt_ids(tokenizer, text)
    else:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = time.perf_counter()
    cache = prefill(model, ids)
    return from_cache(
        cache,
        ids,
        fingerprint(model, tokenizer),
        text=text,
        memory_ids=memory_ids,
        built_s=time.perf_counter() - start,
        meta={"chat_template": chat_template},
        headroom=headroom,
    )


def _tensor(value: torch.Tensor | None) -> torch.Tensor:
    """A cache layer's keys or values, which a filled layer always has."""
    if value is None:
        raise InvalidInputError("the cache has an empty layer; prefill the tokens first")
    return value
