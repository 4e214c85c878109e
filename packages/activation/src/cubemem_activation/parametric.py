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

import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cubemem.cube import MemCube
from cubemem.errors import (
    IncompatibleModelError,
    InvalidBlockError,
    InvalidInputError,
    NotFoundError,
)
from cubemem.model import Kind, MemoryItem, Status, new_id, utcnow
from cubemem_activation.block import Fingerprint, fingerprint

ADAPTERS_DIR = "parametric"
FORMAT_VERSION = 1


# -- training set ---------------------------------------------------------------------------
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


# -- configuration and records ----------------------------------------------------------------
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
            state, losses = _fit(self.model, self.tokenizer, examples, config)
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
        found = [_read(p)[0] for p in sorted(self._folder.glob("*.safetensors"))]
        found.sort(key=lambda a: a.created_at)
        return [replace(a, stale=self._stale(a)) for a in found]

    def get(self, adapter_id: str) -> Adapter:
        path = self._path(adapter_id)
        adapter, _ = _read(path)
        return replace(adapter, stale=self._stale(adapter))

    def delete(self, adapter_id: str) -> None:
        """Remove an adapter from the cube (unloaded first if it is loaded)."""
        path = self._path(adapter_id)
        with self._lock:
            if self._loaded is not None and self._loaded.id == adapter_id:
                self.unload()
            path.unlink()

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
        adapter, state = _read(self._path(adapter_id))
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
            peft_model = _inject(self.model, adapter.config)
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
            report = self.migrate(policy, config=config)
            return len(report.moved)

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
        header = {"format": str(FORMAT_VERSION), "adapter": _dump(adapter)}
        header["digest"] = _digest(header, tensors)
        path = self._folder / f"{adapter.id}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata=header)
        tmp.replace(path)
        return path


# -- tiers ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TierPolicy:
    """When a memory moves between kinds, from the usage the cube keeps (``MemoryItem.usage``:
    search hits and the last one) and how long its text has stood unchanged."""

    hot_hits: int = 3
    """plaintext -> activation: at least this many hits, the last within ``hot_window``."""
    hot_window: timedelta = timedelta(days=1)
    stable_hits: int = 20
    """-> parametric: at least this many hits, text unchanged for ``stable_for``, and used
    within ``cold_after``."""
    stable_for: timedelta = timedelta(days=7)
    cold_after: timedelta = timedelta(days=30)
    """No hit for this long: back to plaintext (out of the adapter at its next training)."""
    min_memories: int = 3
    """Fewer parametric memories than this: no adapter (and an old one is removed)."""
    adapter_name: str = "tiers"

    def kind_of(self, item: MemoryItem, now: datetime, text_since: datetime) -> tuple[Kind, str]:
        """The kind an active memory should have now, and why."""
        hits, last = item.usage.hits, item.usage.last_access
        idle = None if last is None else now - last
        unchanged = now - text_since
        if (
            hits >= self.stable_hits
            and unchanged >= self.stable_for
            and idle is not None
            and idle < self.cold_after
        ):
            return Kind.PARAMETRIC, f"{hits} hits, text unchanged for {unchanged.days} days"
        if hits >= self.hot_hits and idle is not None and idle <= self.hot_window:
            return Kind.ACTIVATION, f"{hits} hits, last {_ago(idle)} ago"
        if idle is None:
            return Kind.PLAINTEXT, "never used"
        return Kind.PLAINTEXT, f"{hits} hits, last {_ago(idle)} ago"


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 86400} days" if seconds >= 86400 else f"{seconds // 3600} hours"


@dataclass(frozen=True)
class MigrationReport:
    moved: list[tuple[str, Kind, Kind]]
    """(memory id, from, to) for each move recorded."""
    trained: Adapter | None
    removed: list[str]
    """Adapters deleted (replaced, or too few memories left)."""


# -- peft -----------------------------------------------------------------------------------
def _lora_config(config: LoraSettings) -> Any:
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


def _inject(model: Any, config: LoraSettings) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, _lora_config(config))


def _fit(
    model: Any, tokenizer: Any, examples: list[Example], config: LoraSettings
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """LoRA-train ``model`` on ``examples``; returns the adapter's tensors and the loss per
    epoch. The model comes back as it was (no adapter, base weights untouched, eval mode)."""
    from peft import get_peft_model_state_dict

    rows = [_encode(tokenizer, e, config.max_tokens) for e in examples]
    grad_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    torch.manual_seed(config.seed)
    order = random.Random(config.seed)
    peft_model = _inject(model, config)
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
                    ids, labels, mask = _batch(rows[first : first + config.batch_size], pad)
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


def _encode(tokenizer: Any, example: Example, max_tokens: int) -> tuple[list[int], int]:
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


def _batch(
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


# -- the file -------------------------------------------------------------------------------
def _dump(adapter: Adapter) -> str:
    data = asdict(replace(adapter, stale=False, path=None))
    data.pop("stale"), data.pop("path")
    return json.dumps(data, sort_keys=True)


def _digest(header: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.blake2b(digest_size=32)
    for key in ("format", "adapter"):
        digest.update(f"{key}={header[key]}\x1f".encode())
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\x1f".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _read(path: Path) -> tuple[Adapter, dict[str, torch.Tensor]]:
    """An adapter file's record and tensors, after its integrity check."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in sorted(f.keys())}
    except Exception as exc:
        raise InvalidBlockError(f"{path} is not a readable adapter: {exc}") from None
    if header.get("format") != str(FORMAT_VERSION) or "adapter" not in header:
        raise InvalidBlockError(f"{path} is not a cubemem adapter of format {FORMAT_VERSION}")
    if header.get("digest") != _digest(header, tensors):
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
