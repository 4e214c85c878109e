"""KV blocks: a text's keys and values for one model, with the fingerprint of that model.

A block is immutable once built: injection always works on a copy (``KVBlock.cache``), so no
number of generations changes it. Blocks persist as safetensors (tensors + a JSON header),
never pickle; loading checks the fingerprint against the model it is meant for.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from cubemem.errors import IncompatibleModelError, InvalidInputError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Fingerprint:
    """What a KV cache depends on: the model's config and weights, dtype, tokenizer, library."""

    config: str
    weights: str
    dtype: str
    tokenizer: str
    transformers: str

    def mismatch(self, other: Fingerprint) -> list[str]:
        return [
            name
            for name in self.__dataclass_fields__
            if getattr(self, name) != getattr(other, name)
        ]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def fingerprint(model: Any, tokenizer: Any) -> Fingerprint:
    """Hash what decides the cached keys/values; cheap enough to call per load.

    The weights' identity hashes every parameter's name, shape and dtype plus a strided sample
    of its values, so a retrained or differently initialised model differs.
    """
    config = model.config.to_dict()
    for volatile in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(volatile, None)
    weights = hashlib.sha256()
    for name, param in model.state_dict().items():
        flat = param.detach().reshape(-1)
        step = max(1, flat.numel() // 64)
        sample = flat[::step][:64].to(torch.float32).cpu().numpy().tobytes()
        weights.update(f"{name}:{tuple(param.shape)}:{param.dtype}".encode())
        weights.update(sample)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocab = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    template = getattr(tokenizer, "chat_template", None) or ""
    return Fingerprint(
        config=_sha(json.dumps(config, sort_keys=True, default=str).encode()),
        weights=weights.hexdigest()[:32],
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        tokenizer=_sha((vocab + "\x00" + template).encode()),
        transformers=transformers.__version__,
    )


@dataclass(frozen=True)
class KVBlock:
    """The keys/values of ``token_ids`` for one model, per layer ``[1, heads, seq, head_dim]``."""

    token_ids: tuple[int, ...]
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    fingerprint: Fingerprint
    text: str = ""
    memory_ids: tuple[str, ...] = ()
    built_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

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
        """A fresh ``DynamicCache`` over the block, copy-on-write.

        Each layer starts out *referencing* the block's tensors; the first token generated
        concatenates onto them, which allocates new tensors, so the cache copies the block
        exactly once and generation never writes into it. ``assert_intact`` checks that no
        in-place write happened (tensor version counters), whatever the transformers version.
        """
        cache = DynamicCache(config=model.config)
        while len(cache.layers) < len(self.keys):  # a config without layer types
            cache.layers.append(DynamicLayer())
        for layer, k, v in zip(cache.layers, self.keys, self.values, strict=False):
            k, v = k.to(model.device), v.to(model.device)
            layer.lazy_initialization(k, v)
            layer.keys, layer.values = k, v
        return cache

    def versions(self) -> tuple[int, ...]:
        return tuple(t._version for t in (*self.keys, *self.values))

    def assert_intact(self, versions: tuple[int, ...]) -> None:
        if self.versions() != versions:
            raise RuntimeError(
                "generation wrote into a stored KV block; this transformers cache updates in "
                "place — please report it (cubemem-activation expects copy-on-write caches)"
            )

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> KVBlock:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device or t.device, dtype=dtype or t.dtype)

        return KVBlock(
            token_ids=self.token_ids,
            keys=tuple(move(k) for k in self.keys),
            values=tuple(move(v) for v in self.values),
            fingerprint=self.fingerprint,
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
    ) -> KVBlock:
        """Read a saved block; with ``model`` and ``tokenizer`` its fingerprint must match."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"no KV block file at {path}")
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            if header.get("format") != str(FORMAT_VERSION):
                raise IncompatibleModelError(
                    f"{path} is not a cubemem KV block of format {FORMAT_VERSION}"
                )
            layers = sum(1 for name in f.keys() if name.endswith(".keys"))  # noqa: SIM118
            block = cls(
                token_ids=tuple(f.get_tensor("token_ids").tolist()),
                keys=tuple(f.get_tensor(f"layer.{i}.keys") for i in range(layers)),
                values=tuple(f.get_tensor(f"layer.{i}.values") for i in range(layers)),
                fingerprint=Fingerprint(**json.loads(header["fingerprint"])),
                text=header.get("text", ""),
                memory_ids=tuple(json.loads(header.get("memory_ids", "[]"))),
                built_s=float(header.get("built_s", "0")),
                meta=json.loads(header.get("meta", "{}")),
            )
        if model is not None:
            if tokenizer is None:
                raise InvalidInputError("pass the tokenizer too: the fingerprint covers it")
            block.check(model, tokenizer)
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
) -> KVBlock:
    return KVBlock(
        token_ids=tuple(token_ids),
        keys=tuple(layer.keys.detach().clone() for layer in cache.layers),
        values=tuple(layer.values.detach().clone() for layer in cache.layers),
        fingerprint=fp,
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
    )
