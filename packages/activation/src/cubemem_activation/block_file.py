"""A saved KV block: safetensors (tensors + a JSON header, never pickle) whose header holds a
digest over the tensors, their shapes and dtype, the token ids, the text, the memory ids and
the fingerprint; ``read_checked`` verifies all of it before a block is built from the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import safe_open

from cubemem.errors import InvalidBlockError

FORMAT_VERSION = 2
"""2: the header carries a digest over the tensors, their shapes and dtype, the token ids,
the text, the memory ids and the fingerprint, verified on load."""


def digest(header: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    hasher = hashlib.blake2b(digest_size=32)
    for key in ("format", "fingerprint", "text", "memory_ids"):
        hasher.update(f"{key}={header[key]}\x1f".encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\x1f".encode())
        hasher.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return hasher.hexdigest()


def read_checked(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A saved block's header and tensors (on the CPU), after every integrity check."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        header = dict(f.metadata() or {})
        version = header.get("format")
        if version != str(FORMAT_VERSION):
            raise InvalidBlockError(
                f"{path} is a KV block of format {version!r}, not {FORMAT_VERSION} (blocks "
                "written before integrity digests must be rebuilt)"
                if version
                else f"{path} is not a cubemem KV block"
            )
        names = set(f.keys())
        layers = sum(1 for name in names if name.endswith(".keys"))
        expected = {"token_ids"} | {
            f"layer.{i}.{part}" for i in range(layers) for part in ("keys", "values")
        }
        if layers == 0 or names != expected:
            raise InvalidBlockError(f"{path} does not hold one keys and one values per layer")
        tensors = {name: f.get_tensor(name) for name in sorted(names)}
    missing = [k for k in ("fingerprint", "text", "memory_ids", "digest") if k not in header]
    if missing:
        raise InvalidBlockError(f"{path} lacks {missing} in its header")
    if digest(header, tensors) != header["digest"]:
        raise InvalidBlockError(
            f"{path} fails its integrity check: the tensors, text or fingerprint were changed "
            "after it was saved"
        )
    length = tensors["token_ids"].numel()
    dtypes = set()
    for i in range(layers):
        keys, values = tensors[f"layer.{i}.keys"], tensors[f"layer.{i}.values"]
        if keys.dim() != 4 or keys.shape != values.shape or keys.shape[-2] != length:
            raise InvalidBlockError(
                f"{path}: layer {i} holds {tuple(keys.shape)} keys and {tuple(values.shape)} "
                f"values for {length} tokens"
            )
        dtypes |= {keys.dtype, values.dtype}
    if len(dtypes) != 1:
        raise InvalidBlockError(f"{path} mixes dtypes {sorted(map(str, dtypes))}")
    return header, tensors
