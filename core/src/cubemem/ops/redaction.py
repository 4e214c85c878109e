"""Redaction at ingest: every memory is passed through the cube's ``RedactionPolicy``
(``cubemem.redact``) when it is made (before it is queued or embedded), when a version is
made, and when it is stored — its text, context, metadata and keyed value. What was redacted
is counted (``Context.redactions``; an agent's write is audited with the counts), never kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from cubemem.model import MemoryItem
from cubemem.ops.context import Context

_counting: ContextVar[Counter[str] | None] = ContextVar("cubemem_redactions", default=None)


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """The redactions made inside the block, by kind (an agent's cube audits them)."""
    counts: Counter[str] = Counter()
    token = _counting.set(counts)
    try:
        yield counts
    finally:
        _counting.reset(token)


def redacted(ctx: Context, item: MemoryItem) -> MemoryItem:
    """``item`` with the personal data its cube's policy names masked, dropped or hashed."""
    fields = {"content": item.content, "context": item.context, "metadata": item.metadata}
    if item.value is not None:
        fields["value"] = item.value
    changed = redacted_fields(ctx, fields)
    return item if changed is fields else item.model_copy(update=changed)


def redacted_fields(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` of a memory (``content``, ``context``, ``metadata``, ``value``) redacted; the
    same dict when nothing was."""
    redactor = ctx.governance.redactor(ctx.pii_detectors)
    if redactor is None:
        return fields
    counts: Counter[str] = Counter()
    changed = dict(fields)
    for name in ("content", "context", "metadata", "value"):
        if fields.get(name) is not None:
            changed[name] = redactor.value(fields[name], counts)
    if not counts:
        return fields
    if isinstance(changed.get("content"), str) and not changed["content"].strip():
        changed["content"] = " ".join(f"[{kind.upper()}]" for kind in counts)  # all dropped
    ctx.redactions.update(counts)
    outer = _counting.get()
    if outer is not None:
        outer.update(counts)
    return changed
