"""Parametric memory: a cube's stable memories distilled into a LoRA adapter for a local model.

The third kind of memory (MemOS), after plaintext and activation. Memories that are stable and
used constantly — a user's profile, a team's conventions — are trained into a small adapter
(``peft`` LoRA) so the model answers from its weights instead of reading them in every prompt.
The memories stay in the cube as text, searchable; an adapter is derived from them, like a KV
block:

- ``ParametricMemory.train`` builds a training set from the memory text alone (statement
  recall, completions and question/answer prompts made by templates — no other model needed),
  fine-tunes a LoRA adapter with a fixed seed, and saves it in the cube
  (``<cube>/parametric/<id>.safetensors``: the adapter's tensors, and in the header the base
  model's fingerprint — the same as KV blocks' — the memories it covers with their versions and
  content digests, the training config and the loss curve, under an integrity digest).
- ``adapters`` lists them (``stale`` when a covered memory was edited or deleted since),
  ``load`` puts one into the model (refused with ``IncompatibleModelError`` for another base
  model), ``unload`` takes it out, ``delete`` removes it.
- ``migrate`` moves memories between the kinds by the usage the cube keeps (``TierPolicy``):
  plaintext -> activation (hot now) -> parametric (hot for long and unchanged), and back when
  they cool; each move is a new version of the memory (its ``kind``, and why, in
  ``metadata["cubemem_tier"]``), and the adapter is retrained when its set changes or goes
  stale. ``schedule`` has the cube's scheduler run it after every lifecycle sweep.

Loading an adapter changes the model object itself (peft injects its layers) until ``unload``;
``ActivationMemory(..., parametric=...)`` builds its KV blocks on the adapted model and leaves
the memories the adapter covers out of them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from cubemem.cube import MemCube
from cubemem.errors import (
    IncompatibleModelError,
    InvalidBlockError,
    InvalidInputError,
    NotFoundError,
)
from cubemem.model import Kind, MemoryItem, Status, new_id, utcnow
from cubemem_activation.adapters import (
    ADAPTERS_DIR,
    FORMAT_VERSION,
    Adapter,
    Covered,
    LoraSettings,
    adapter_digest,
    content_digest,
    dump,
    read_adapter,
)
from cubemem_activation.fingerprint import fingerprint
from cubemem_activation.tiers import MigrationReport, TierPolicy
from cubemem_activation.training import (
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    fit,
    inject,
    key_token,
    subject,
    training_examples,
)

__all__ = [
    "HELD_OUT_TEMPLATES",
    "TRAIN_TEMPLATES",
    "Adapter",
    "LoraSettings",
    "MigrationReport",
    "ParametricMemory",
    "TierPolicy",
    "content_digest",
    "key_token",
    "subject",
    "training_examples",
]


# -- the parametric memory of a cube ----------------------------------------------------------
class ParametricMemory:
    """Adapters of one cube for one local model (``model`` + ``tokenizer``, Hugging Face)."""

    def __init__(self, cube: MemCube, model: Any, tokenizer: Any) -> None:
        self.cube = cube
        self.model = model
        self.tokenizer = tokenizer
        self._folder = Path(cube.path) / ADAPTERS_DIR
        self._lock = threading.RLock()
        self._peft: Any | None = None
        self._loaded: Adapter | None = None
        self._base = fingerprint(model, tokenizer)  # taken before any adapter is injected

    @property
    def lock(self) -> threading.RLock:
        """Held while the model object changes (training, load, unload); ``ActivationMemory``
        holds it while it generates, so neither runs during the other."""
        return self._lock

    # -- training --------------------------------------------------------------------------
    def select(
        self,
        *,
        tags: Sequence[str] | None = None,
        pinned: bool = False,
        ids: Sequence[str] | None = None,
    ) -> list[MemoryItem]:
        """Active memories to train on: by id, by tag (any of ``tags``), or pinned (tag
        ``pinned`` or ``metadata["pinned"]`` true, as the lifecycle reads it)."""
        if ids is not None:
            found = [self.cube.get(i) for i in ids]
            return [i for i in found if i.status is Status.ACTIVE]
        chosen = []
        for item in self.cube.iter():
            if (tags and set(tags) & set(item.tags)) or (
                pinned and ("pinned" in item.tags or item.metadata.get("pinned") is True)
            ):
                chosen.append(item)
        return chosen

    def train(
        self,
        memories: Sequence[MemoryItem],
        *,
        name: str = "adapter",
        config: LoraSettings | None = None,
    ) -> Adapter:
        """Train an adapter on ``memories`` and save it in the cube; returns its record."""
        config = config or LoraSettings()
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise InvalidInputError(f"an adapter's name is 1-128 characters, got {name!r}")
        if not isinstance(memories, list | tuple):
            raise InvalidInputError("train takes a list of MemoryItem (cube.get / select)")
        items = [m for m in memories if isinstance(m, MemoryItem)]
        if len(items) != len(memories) or not items:
            raise InvalidInputError(
                "train takes a non-empty list of MemoryItem (cube.get / select)"
            )
        examples = training_examples(items)
        with self._lock:
            if self._peft is not None:
                raise InvalidInputError("unload the loaded adapter before training another")
            start = time.perf_counter()
            state, losses = fit(self.model, self.tokenizer, examples, config)
            adapter = Adapter(
                id=new_id(),
                name=name,
                base=self._base,
                covers=tuple(Covered(i.id, i.version, content_digest(i.content)) for i in items),
                config=config,
                losses=tuple(losses),
                examples=len(examples),
                trained_s=round(time.perf_counter() - start, 3),
                created_at=utcnow().isoformat(),
            )
            path = self._save(adapter, state)
        return replace(adapter, path=path)

    # -- the adapters in the cube -----------------------------------------------------------
    def adapters(self) -> list[Adapter]:
        """Every adapter saved in the cube, oldest first, with ``stale`` filled in."""
        if not self._folder.is_dir():
            return []
        found = [read_adapter(p)[0] for p in sorted(self._folder.glob("*.safetensors"))]
        found.sort(key=lambda a: a.created_at)
        return [replace(a, stale=self._stale(a)) for a in found]

    def get(self, adapter_id: str) -> Adapter:
        path = self._path(adapter_id)
        adapter, _ = read_adapter(path)
        return replace(adapter, stale=self._stale(adapter))

    def delete(self, adapter_id: str) -> None:
        """Remove an adapter from the cube (unloaded first if it is loaded)."""
        path = self._path(adapter_id)
        with self._lock:
            if self._loaded is not None and self._loaded.id == adapter_id:
                self.unload()
            path.unlink()

    def prune_forgotten(self) -> list[str]:
        """Delete every adapter trained on a memory that is gone from the cube (forgotten or
        purged): its weights hold what was to be forgotten. The scheduler's sweep runs it
        before ``migrate``, which trains a new one from the memories left. Returns the ids."""
        removed = []
        for adapter in self.adapters():
            if not adapter.stale:
                continue
            present = {i.id for i in self.cube.maintenance.store.get(list(adapter.memory_ids))}
            if any(c.id not in present for c in adapter.covers):
                self.delete(adapter.id)
                removed.append(adapter.id)
        return removed

    def _stale(self, adapter: Adapter) -> bool:
        for covered in adapter.covers:
            try:
                item = self.cube.get(covered.id)
            except NotFoundError:  # purged
                return True
            if item.status is not Status.ACTIVE or content_digest(item.content) != covered.digest:
                return True
        return False

    # -- loading ----------------------------------------------------------------------------
    @property
    def loaded(self) -> Adapter | None:
        """The adapter in the model now, if any."""
        return self._loaded

    def load(self, adapter_id: str) -> Adapter:
        """Put the adapter into the model (replacing one already loaded). Another base model's
        adapter is ``IncompatibleModelError``; a damaged file ``InvalidBlockError``."""
        adapter, state = read_adapter(self._path(adapter_id))
        wrong = adapter.base.mismatch(self._base)
        if wrong:
            raise IncompatibleModelError(
                f"adapter {adapter_id} was trained on another base model ({', '.join(wrong)} "
                "differ); train one for this model with ParametricMemory.train"
            )
        from peft import set_peft_model_state_dict

        with self._lock:
            if self._peft is not None:
                self.unload()
            peft_model = inject(self.model, adapter.config)
            result = set_peft_model_state_dict(peft_model, state)
            missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
            if missing or getattr(result, "unexpected_keys", []):
                peft_model.unload()
                raise InvalidBlockError(
                    f"adapter {adapter_id} does not fit this model's layers ({len(missing)} "
                    "missing); retrain it"
                )
            self.model.eval()
            self._peft, self._loaded = peft_model, replace(adapter, stale=self._stale(adapter))
            return self._loaded

    def unload(self) -> None:
        """Take the loaded adapter out of the model (the base weights were never changed)."""
        with self._lock:
            if self._peft is not None:
                self._peft.unload()
                self.model.eval()
            self._peft, self._loaded = None, None

    @contextmanager
    def using(self, adapter_id: str) -> Iterator[Adapter]:
        """The adapter loaded for the ``with`` block, then unloaded."""
        adapter = self.load(adapter_id)
        try:
            yield adapter
        finally:
            self.unload()

    # -- migration between kinds ------------------------------------------------------------
    def migrate(
        self,
        policy: TierPolicy | None = None,
        *,
        now: datetime | None = None,
        config: LoraSettings | None = None,
    ) -> MigrationReport:
        """Move memories between the kinds by ``policy`` and keep the adapter in step: the
        parametric set changed (or its adapter went stale) -> a new adapter is trained, loaded
        if the old one was, and the old one deleted."""
        policy = policy or TierPolicy()
        now = now or datetime.now(UTC)
        plan = []
        for item in self.cube.iter():
            # the text's age only matters for memories used enough to stand for parametric
            since = self._text_since(item) if item.usage.hits >= policy.stable_hits else None
            plan.append((item, *policy.kind_of(item, now, since or item.updated_at)))
        moved = []
        for item, kind, why in plan:
            if item.kind is not kind:
                self.cube.maintenance.set_kind(item.id, kind, note=f"{kind.value}: {why}")
                moved.append((item.id, item.kind, kind))
        wanted = sorted(i.id for i, kind, _ in plan if kind is Kind.PARAMETRIC)
        current = [a for a in self.adapters() if a.name == policy.adapter_name]
        fresh = [a for a in current if not a.stale and sorted(a.memory_ids) == wanted]
        trained = None
        if not fresh and len(wanted) >= policy.min_memories:
            with self._lock:  # training needs the model bare: whatever was loaded comes back
                before = self._loaded
                self.unload()
                trained = self.train(
                    self.select(ids=wanted), name=policy.adapter_name, config=config
                )
                if before is not None:
                    replaced = before.name == policy.adapter_name
                    self.load(trained.id if replaced else before.id)
        keep = {a.id for a in fresh} | ({trained.id} if trained else set())
        removed = []
        for adapter in current:
            if adapter.id not in keep and (trained or len(wanted) < policy.min_memories):
                self.delete(adapter.id)
                removed.append(adapter.id)
        return MigrationReport(moved=moved, trained=trained, removed=removed)

    def schedule(
        self, policy: TierPolicy | None = None, *, config: LoraSettings | None = None
    ) -> Callable[[], None]:
        """Run ``migrate`` after each of the cube's lifecycle sweeps (every
        ``Settings.lifecycle_interval_s``, on a scheduler worker of this process, which starts
        if it was not running); returns the function that stops it."""
        policy = policy or TierPolicy()

        def sweep() -> int:
            pruned = self.prune_forgotten()
            report = self.migrate(policy, config=config)
            return len(report.moved) + len(pruned)

        stop = self.cube.scheduler.on_sweep(sweep, cube=self.cube.id)
        self.cube.scheduler.start()
        return stop

    def _text_since(self, item: MemoryItem) -> datetime:
        """When the memory's current text was written (moves between kinds keep the text)."""
        since = item.updated_at
        for version in reversed(self.cube.history(item.id)):
            if version.content != item.content:
                break
            since = version.updated_at
        return since

    # -- files ------------------------------------------------------------------------------
    def _path(self, adapter_id: str) -> Path:
        if not isinstance(adapter_id, str) or not re.fullmatch(r"[0-9a-f]{32}", adapter_id):
            raise InvalidInputError(f"an adapter id is 32 hex digits, got {adapter_id!r}")
        path = self._folder / f"{adapter_id}.safetensors"
        if not path.is_file():
            raise NotFoundError(f"no adapter {adapter_id} in cube {self.cube.name!r}")
        return path

    def _save(self, adapter: Adapter, state: dict[str, torch.Tensor]) -> Path:
        self._folder.mkdir(exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        header = {"format": str(FORMAT_VERSION), "adapter": dump(adapter)}
        header["digest"] = adapter_digest(header, tensors)
        path = self._folder / f"{adapter.id}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata=header)
        tmp.replace(path)
        return path
