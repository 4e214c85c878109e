"""A sentence-transformers model's output dimension, read from the files of its folder —
``modules.json`` and each module's configuration — without importing torch or loading weights
(so ``cubemem init`` and ``MemoryOS.create_cube`` take a moment, not the model's load time).
A module this does not know, or a name that is not a local folder, answers ``None``: the caller
loads the model and asks it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_mean_tokens",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


def configured_dimension(source: str) -> int | None:
    folder = Path(source)
    try:
        modules = _read(folder / "modules.json")
        dimension: int | None = None
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            where = folder / str(module.get("path", ""))
            if kind == "Transformer":
                dimension = int(_read(where / "config.json")["hidden_size"])
            elif kind == "Pooling":
                config = _read(where / "config.json")
                modes = sum(bool(config.get(mode)) for mode in _POOLING_MODES)
                dimension = int(config["word_embedding_dimension"]) * max(modes, 1)
            elif kind == "Dense":
                dimension = int(_read(where / "config.json")["out_features"])
            elif kind != "Normalize":
                return None
        return dimension
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
