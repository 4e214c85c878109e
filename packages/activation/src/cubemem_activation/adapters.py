"""An adapter's record and its file: what it was trained on (each memory's id, version and
content digest), how, and on which base model; saved as safetensors with the record in the
header under an integrity digest, in ``<cube>/parametric/<id>.safetensors``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors import safe_open

from cubemem.errors import InvalidBlockError, InvalidInputError
from cubemem_activation.fingerprint import Fingerprint

ADAPTERS_DIR = "parametric"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LoraSettings:
    """How an adapter is trained (recorded with it)."""

    rank: int = 8
    alpha: int = 16
    target_modules: tuple[str, ...] | str = "all-linear"
    """Module names to adapt, or ``"all-linear"`` (peft: every linear layer but the output
    head). A tiny model trained from scratch learns little without its head: name it too
    (``(..., "lm_head")``)."""
    epochs: int = 30
    learning_rate: float = 3e-3
    batch_size: int = 8
    max_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rank", "alpha", "epochs", "batch_size", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(
                    f"LoraSettings.{name} must be a positive int, got {value!r}"
                )
        if not (isinstance(self.learning_rate, float | int) and 0 < self.learning_rate < 1):
            raise InvalidInputError("LoraSettings.learning_rate must be in (0, 1)")


@dataclass(frozen=True)
class Covered:
    """A memory an adapter was trained on, as it was then."""

    id: str
    version: int
    digest: str


@dataclass(frozen=True)
class Adapter:
    """A trained adapter's record (the header of its file)."""

    id: str
    name: str
    base: Fingerprint
    covers: tuple[Covered, ...]
    config: LoraSettings
    losses: tuple[float, ...]
    """Mean training loss per epoch."""
    examples: int
    trained_s: float
    created_at: str
    stale: bool = False
    """A covered memory changed or went away since training (filled in by ``adapters``)."""
    path: Path | None = field(default=None, compare=False)

    @property
    def memory_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.covers)


def content_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def dump(adapter: Adapter) -> str:
    data = asdict(replace(adapter, stale=False, path=None))
    data.pop("stale"), data.pop("path")
    return json.dumps(data, sort_keys=True)


def adapter_digest(header: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    hasher = hashlib.blake2b(digest_size=32)
    for key in ("format", "adapter"):
        hasher.update(f"{key}={header[key]}\x1f".encode())
    for name in sorted(tensors):
        tensor = tensors[name]
        hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\x1f".encode())
        hasher.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return hasher.hexdigest()


def read_adapter(path: Path) -> tuple[Adapter, dict[str, torch.Tensor]]:
    """An adapter file's record and tensors, after its integrity check."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in sorted(f.keys())}
    except Exception as exc:
        raise InvalidBlockError(f"{path} is not a readable adapter: {exc}") from None
    if header.get("format") != str(FORMAT_VERSION) or "adapter" not in header:
        raise InvalidBlockError(f"{path} is not a cubemem adapter of format {FORMAT_VERSION}")
    if header.get("digest") != adapter_digest(header, tensors):
        raise InvalidBlockError(
            f"{path} fails its integrity check: its tensors or record changed after it was saved"
        )
    try:
        data = json.loads(header["adapter"])
        config = data.pop("config")
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = tuple(config["target_modules"])
        adapter = Adapter(
            **{
                **data,
                "base": Fingerprint(**data["base"]),
                "covers": tuple(Covered(**c) for c in data["covers"]),
                "config": LoraSettings(**config),
                "losses": tuple(data["losses"]),
            },
            path=path,
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidBlockError(f"{path} has a malformed adapter record: {exc}") from None
    return adapter, tensors
