"""``cube.maintenance``: what few programs call on a local cube.

Consolidation, lifecycle sweeps, extraction reruns and kind moves (which the scheduler runs in
the background anyway), the working-memory hot sets, and the pipeline's parts: the context
the operations act on, its store, its settings, the extractor, decider, merge policy and
retrieval weights. Moved off ``MemCube`` to keep its surface to what every program needs
(CHANGELOG.md lists the old and new names).
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cubemem.cube.runner import threaded
from cubemem.errors import InvalidInputError
from cubemem.extract import Decider
from cubemem.manifest import Manifest, read_manifest, write_manifest
from cubemem.model import Kind, MemoryItem, Status
from cubemem.model.governance import Expiry, RedactionPolicy, RetentionRule
from cubemem.ops import consolidate as consolidation
from cubemem.ops import followup, inputs, lifecycle, read, retention, summarize, write
from cubemem.ops.context import Context, Extractor
from cubemem.ops.working import Subscriber, WorkingMemory
from cubemem.redact import Detector
from cubemem.retrieve import RetrievalConfig
from cubemem.settings import Settings
from cubemem.store import MemoryStore
from cubemem.store.base import Repair


class Maintenance:
    """The maintenance side of one local cube."""

    def __init__(self, ctx: Context, settings: Settings) -> None:
        self._ctx = ctx
        self.context: Context = ctx
        """What the operations in ``cubemem.ops`` and the scheduler's workers act on."""
        self.store: MemoryStore = ctx.store
        """The storage engine (rows, versions, vectors)."""
        self.settings: Settings = settings
        self.working: WorkingMemory = ctx.working
        """The per agent/session hot sets (``cubemem.ops.working.WorkingMemory``)."""
        self.last_repair: Repair = Repair()
        """What the last ``MemCube.open`` repaired in the index."""

    def warm(self) -> None:
        """Load the embedder and build the search index now (``HybridRetriever.warm``)."""
        self._ctx.retriever.warm()

    awarm = threaded(warm)

    # -- the pipeline's hooks ---------------------------------------------------------------
    @property
    def retrieval(self) -> RetrievalConfig:
        """The fusion weights and pools search uses (defaults measured on LoCoMo)."""
        return self._ctx.retriever.config

    @retrieval.setter
    def retrieval(self, config: RetrievalConfig) -> None:
        if not isinstance(config, RetrievalConfig):
            raise InvalidInputError("retrieval must be a cubemem.retrieve.RetrievalConfig")
        self._ctx.retriever.config = config

    @property
    def extractor(self) -> Extractor | None:
        """Turns raw conversation turns into facts after each write (see ``extract``)."""
        return self._ctx.extractor

    @extractor.setter
    def extractor(self, extractor: Extractor | None) -> None:
        if extractor is not None and not callable(extractor):
            raise InvalidInputError("extractor must be a callable: turns -> facts")
        self._ctx.extractor = extractor

    @property
    def decider(self) -> Decider | None:
        """Decides where an extracted fact goes (ADD/UPDATE/DUPLICATE/CONTRADICT); None: the
        deterministic similarity rule (``cubemem.ops.decide``)."""
        return self._ctx.decider

    @decider.setter
    def decider(self, decider: Decider | None) -> None:
        self._ctx.decider = decider

    @property
    def summarizer(self) -> Any:
        """Writes session summaries after writes (``cubemem.summarize.SessionSummarizer``);
        None: no summaries."""
        return self._ctx.summarizer

    @summarizer.setter
    def summarizer(self, summarizer: Any) -> None:
        usable = callable(summarizer) and all(
            hasattr(summarizer, name) for name in ("every", "max_turns")
        )
        if summarizer is not None and not usable:
            raise InvalidInputError(
                "summarizer must be a cubemem.summarize.SessionSummarizer (turns -> text, with "
                "every and max_turns)"
            )
        self._ctx.summarizer = summarizer

    @property
    def merge_policy(self) -> consolidation.MergePolicy | None:
        """Decides what text a consolidation keeps (default: the newer text)."""
        return self._ctx.merge_policy

    @merge_policy.setter
    def merge_policy(self, policy: consolidation.MergePolicy | None) -> None:
        self._ctx.merge_policy = policy

    # -- work the scheduler also does ---------------------------------------------------------
    def extract(self, ids: Sequence[str]) -> list[MemoryItem]:
        """Run the cube's ``extractor`` over these raw turns now; returns the facts stored."""
        return followup.extract(self._ctx, inputs.memory_ids(ids))

    aextract = threaded(extract)

    def summarize(self, session: str, *, user: str | None = None) -> list[MemoryItem]:
        """Summarize the turns of ``session`` (of ``user``) that no summary covers yet, now —
        however few (at the end of a session); returns the summaries stored."""
        if not isinstance(session, str) or not session.strip():
            raise InvalidInputError(f"session must be a non-empty str, got {session!r}")
        if self._ctx.summarizer is None:
            raise InvalidInputError(
                "set cube.maintenance.summarizer = SessionSummarizer(model) first"
            )
        return summarize.session_summaries(self._ctx, user, session, 1)

    asummarize = threaded(summarize)

    def consolidate(self, ids: Sequence[str] | None = None) -> list[consolidation.Merge]:
        """Merge near-duplicates of ``ids`` (default: every active fact); see ``undo_merge``."""
        if ids is None:
            ids = [
                i.id
                for i in read.iterate(self._ctx, None, page_size=500)
                if consolidation.mergeable(i)
            ]
        return consolidation.consolidate(self._ctx, inputs.memory_ids(ids))

    aconsolidate = threaded(consolidate)

    def undo_merge(self, merged_id: str) -> tuple[MemoryItem, MemoryItem]:
        """Reverse a merge: (the survivor as it was before, the merged memory, active again)."""
        return consolidation.undo_merge(self._ctx, inputs.memory_id(merged_id))

    aundo_merge = threaded(undo_merge)

    def lifecycle(
        self, *, now: datetime | None = None, dry_run: bool = False
    ) -> lifecycle.LifecycleReport:
        """Archive expired memories and those whose decay score fell below the threshold."""
        return lifecycle.sweep(self._ctx, now=now, dry_run=dry_run)

    alifecycle = threaded(lifecycle)

    def set_kind(
        self,
        id: str,
        kind: Kind | str,
        *,
        note: str | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem:
        """Move a memory to another kind (plaintext, activation, parametric) as a new version:
        the text stays and stays searchable; ``note`` says why (``metadata["cubemem_tier"]``).
        The tiers of ``cubemem_activation.ParametricMemory.migrate`` use it."""
        return write.set_kind(self._ctx, id, kind, note=note, expected_version=expected_version)

    aset_kind = threaded(set_kind)

    # -- working memory -----------------------------------------------------------------------
    def working_memory(
        self, agent: str | None = None, session: str | None = None
    ) -> list[MemoryItem]:
        """The hot memories of an agent/session, hottest first (active ones only)."""
        ids = self._ctx.working.ids((agent, session))
        items = {i.id: i for i in self._ctx.store.get(ids) if i.status is Status.ACTIVE}
        return [items[i] for i in ids if i in items]

    aworking_memory = threaded(working_memory)

    def on_working_memory_change(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(change)`` when a hot set changes; returns an unsubscribe function."""
        return self._ctx.working.subscribe(callback)

    # -- governance (docs/governance.md) ----------------------------------------------------
    @property
    def redaction(self) -> RedactionPolicy | None:
        """The personal data this cube redacts before anything is stored (its manifest's)."""
        return self._manifest().redaction

    def set_redaction(self, policy: RedactionPolicy | dict[str, Any] | None) -> None:
        """Set (None: clear) the redaction policy, in the cube's manifest: this process and
        every other that has the cube open apply it from their next write. What is already
        stored is not rewritten (``forget`` it, or update it)."""
        if isinstance(policy, dict):
            try:
                policy = RedactionPolicy.model_validate(policy)
            except ValidationError as exc:
                raise InvalidInputError(f"invalid redaction policy: {exc}") from None
        if policy is not None and not isinstance(policy, RedactionPolicy):
            raise InvalidInputError(
                "redaction must be a cubemem.RedactionPolicy, its dict, or None; got "
                f"{type(policy).__name__}"
            )
        self._update_manifest(redaction=policy)

    aset_redaction = threaded(set_redaction)

    @property
    def retention(self) -> list[RetentionRule]:
        """The cube's retention rules (its manifest's), run by every lifecycle sweep."""
        return list(self._manifest().retention)

    def set_retention(self, rules: Sequence[RetentionRule | dict[str, Any]]) -> None:
        """Replace the retention rules (in the cube's manifest, for every process); ``[]``
        keeps everything. Check them first with ``apply_retention(dry_run=True)``."""
        if isinstance(rules, RetentionRule | dict | str):
            raise InvalidInputError("retention takes a list of rules")
        try:
            parsed = [RetentionRule.model_validate(r) for r in rules]
        except ValidationError as exc:
            raise InvalidInputError(f"invalid retention rule: {exc}") from None
        names = [r.name for r in parsed]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"retention rules need distinct names, got {names}")
        self._update_manifest(retention=parsed)

    aset_retention = threaded(set_retention)

    def apply_retention(
        self, *, dry_run: bool = False, now: datetime | None = None
    ) -> list[Expiry]:
        """Run the retention rules now (the lifecycle sweep does too): each expiry a
        ``forget``; ``dry_run`` lists what each rule would forget and changes nothing."""
        return retention.run(self._ctx, now=now, dry_run=dry_run)

    aapply_retention = threaded(apply_retention)

    @property
    def pii_detectors(self) -> list[Detector]:
        """Detectors run besides the built-in ones (``text -> [cubemem.redact.Finding]``, such
        as a wrapped Presidio ``AnalyzerEngine``); this process only."""
        return self._ctx.pii_detectors

    @property
    def redactions(self) -> dict[str, int]:
        """What this process redacted in the cube, by kind (counts; nothing else is kept)."""
        return dict(self._ctx.redactions)

    def _folder(self) -> Path:
        if self._ctx.folder is None:
            raise InvalidInputError("this cube has no folder to keep a policy in")
        return self._ctx.folder

    def _manifest(self) -> Manifest:
        return read_manifest(self._folder())

    def _update_manifest(self, **changes: Any) -> None:
        """Read, change and write the manifest under a lock, so two processes setting the
        policy and the rules at once keep both."""
        folder = self._folder()
        with open(folder / "cube.json.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_manifest(folder, read_manifest(folder).model_copy(update=changes))
