"""What a KV cache depends on, hashed: the model's config and weights, its dtype, the
tokenizer and the transformers version. A block is only injected into the model it was built
for."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch
import transformers


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
