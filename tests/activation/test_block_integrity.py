"""KV block files are checked before use: a changed header, swapped tensors, a cache under
another memory's text, a truncated layer or a malformed file is ``InvalidBlockError``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cubemem import InvalidBlockError
from cubemem_activation import KVBlock, build_block
from cubemem_activation.block import memory_prompt_ids
from cubemem_activation.block_file import digest

LIVES = "Ana lives in Porto."
WORKS = "Ana works in Porto."


def parts(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt", device="cpu") as f:
        return dict(f.metadata()), {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118


def forge(path: Path, header: dict[str, str], tensors: dict[str, torch.Tensor], *, sign: bool):
    """Write a changed block; ``sign`` recomputes the digest as a careful attacker would."""
    if sign:
        header = header | {"digest": digest(header, tensors)}
    save_file(tensors, str(path), metadata=header)
    return path


@pytest.fixture
def saved(model, tokenizer, tmp_path) -> tuple[Path, Path]:
    lives = build_block(model, tokenizer, LIVES).save(tmp_path / "lives.safetensors")
    works = build_block(model, tokenizer, WORKS).save(tmp_path / "works.safetensors")
    return lives, works


def test_intact_blocks_load(saved, model, tokenizer):
    for path in saved:
        assert KVBlock.load(path, model=model, tokenizer=tokenizer).text in (LIVES, WORKS)


def test_a_header_moved_onto_other_tensors_is_refused(saved, tmp_path):
    (lives, works) = saved
    lives_header, _ = parts(lives)
    _, works_tensors = parts(works)
    swapped = forge(tmp_path / "swap.safetensors", lives_header, works_tensors, sign=False)
    with pytest.raises(InvalidBlockError, match="integrity"):
        KVBlock.load(swapped)


def test_a_cache_under_another_memorys_text_is_refused(saved, tmp_path, tokenizer):
    lives, _ = saved
    header, tensors = parts(lives)
    relabelled = header | {"text": WORKS}
    unsigned = forge(tmp_path / "a.safetensors", relabelled, tensors, sign=False)
    with pytest.raises(InvalidBlockError, match="integrity"):
        KVBlock.load(unsigned)
    signed = forge(tmp_path / "b.safetensors", relabelled, tensors, sign=True)
    assert memory_prompt_ids(tokenizer, WORKS) != tensors["token_ids"].tolist()
    with pytest.raises(InvalidBlockError, match="not its text"):
        KVBlock.load(signed, tokenizer=tokenizer)


def test_a_truncated_layer_is_refused(saved, tmp_path):
    lives, _ = saved
    header, tensors = parts(lives)
    short = dict(tensors)
    short["layer.1.keys"] = tensors["layer.1.keys"][..., :5, :].contiguous()
    short["layer.1.values"] = tensors["layer.1.values"][..., :5, :].contiguous()
    with pytest.raises(InvalidBlockError, match="integrity"):
        KVBlock.load(forge(tmp_path / "a.safetensors", header, short, sign=False))
    with pytest.raises(InvalidBlockError, match="layer 1"):
        KVBlock.load(forge(tmp_path / "b.safetensors", header, short, sign=True))
    dropped = {k: v for k, v in tensors.items() if k != "layer.0.values"}
    with pytest.raises(InvalidBlockError, match="one keys and one values"):
        KVBlock.load(forge(tmp_path / "c.safetensors", header, dropped, sign=True))


@pytest.mark.parametrize(
    "damage",
    ["random", "empty", "truncated", "bad-json", "no-digest", "old-format"],
)
def test_malformed_files_are_invalid_blocks(saved, tmp_path, damage):
    lives, _ = saved
    header, tensors = parts(lives)
    path = tmp_path / "bad.safetensors"
    if damage == "random":
        path.write_bytes(torch.randint(0, 255, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(lives.read_bytes()[: lives.stat().st_size // 2])
    elif damage == "bad-json":
        forge(path, header | {"fingerprint": "{not json"}, tensors, sign=True)
    elif damage == "no-digest":
        forge(path, {k: v for k, v in header.items() if k != "digest"}, tensors, sign=False)
    else:
        forge(path, header | {"format": "1"}, tensors, sign=False)
    with pytest.raises(InvalidBlockError):
        KVBlock.load(path)
