"""Redaction at ingest: every memory is passed through the cube's ``RedactionPolicy``
(``cubemem.redact``) when it is made (before it is queued or embedded), when a version is
made, and when it is stored — every string of it: text, context, metadata (keys and values),
keyed value, tags, speaker, ``scope.user``/``scope.session``, keyed namespace and key. What
was redacted is counted (``Context.redactions``; an agent's write is audited with the
counts), never kept.

Text is masked, dropped or hashed as the policy says. Names — a user, a session, a speaker, a
tag, a namespace label, a key, a metadata key — are always hashed (``[EMAIL:1f3a9c0e2b7d]``):
masked, two users would become one. So that a lookup by the same name finds them,
``identified`` rewrites the names an operation is given (its scope, filters, namespace, key)
the same way before it runs (``MemCube.run``, ``AgentCube.run``, an agent's grant). Redacting
twice changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeGuard, TypeVar

from cubemem.model import Filters, MemoryItem, Scope
from cubemem.ops.context import Context
from cubemem.redact import Redactor

_counting: ContextVar[Counter[str] | None] = ContextVar("cubemem_redactions", default=None)
Op = TypeVar("Op")


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
    fields: dict[str, Any] = {
        "content": item.content,
        "context": item.context,
        "metadata": item.metadata,
        "tags": item.tags,
        "scope": item.scope,
        "speaker": item.provenance.speaker,
    }
    for name in ("value", "namespace", "key"):
        if getattr(item, name) is not None:
            fields[name] = getattr(item, name)
    changed = redacted_fields(ctx, fields)
    if changed is fields:
        return item
    speaker = changed.pop("speaker")
    if speaker != item.provenance.speaker:
        changed["provenance"] = item.provenance.model_copy(update={"speaker": speaker})
    return item.model_copy(update=changed)


def redacted_fields(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` of a memory (any of ``content``, ``context``, ``metadata``, ``value``,
    ``tags``, ``scope``, ``speaker``, ``namespace``, ``key``) redacted; the same dict when
    nothing was."""
    redactor = ctx.governance.redactor(ctx.pii_detectors)
    if redactor is None:
        return fields
    counts: Counter[str] = Counter()
    changed = dict(fields)
    for name in ("content", "context", "metadata", "value"):
        if fields.get(name) is not None:
            changed[name] = redactor.value(fields[name], counts)
    for name in ("speaker", "key"):
        if isinstance(fields.get(name), str):
            changed[name] = redactor.identifier(fields[name], counts)
    for name in ("tags", "namespace"):
        if fields.get(name) is not None:
            names = [redactor.identifier(n, counts) for n in fields[name]]
            changed[name] = tuple(names) if name == "namespace" else list(dict.fromkeys(names))
    if isinstance(fields.get("scope"), Scope):
        changed["scope"] = _scope(redactor, fields["scope"], counts)
    if not counts:
        return fields
    if isinstance(changed.get("content"), str) and not changed["content"].strip():
        changed["content"] = " ".join(f"[{kind.upper()}]" for kind in counts)  # all dropped
    _count(ctx, counts)
    return changed


def identified(ctx: Context, operation: Op) -> Op:
    """``operation`` with the names it is given (scope, session, user, namespace, prefix,
    key, and the user, session, namespace, tags, metadata and value of its filters) written as
    the cube stores them; the same object when the cube redacts nothing or nothing changed."""
    redactor = ctx.governance.redactor(ctx.pii_detectors)
    if redactor is None or not dataclasses.is_dataclass(operation):
        return operation
    counts: Counter[str] = Counter()
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(operation):
        given = getattr(operation, field.name)
        now = _named(redactor, field.name, given, counts)
        if now is not given:
            changes[field.name] = now
    if not changes:
        return operation
    if getattr(operation, "right", "read") != "read":
        _count(ctx, counts)
    return dataclasses.replace(operation, **changes)  # type: ignore[type-var]


def identified_filters(ctx: Context, given: dict[str, Any]) -> dict[str, Any]:
    """Filters (a dict) with their names as the cube stores them."""
    redactor = ctx.governance.redactor(ctx.pii_detectors)
    return given if redactor is None else _filters(redactor, given)


def identified_scope(ctx: Context, scope: Scope | None) -> Scope | None:
    """A grant's scope as the cube stores the names in it."""
    redactor = ctx.governance.redactor(ctx.pii_detectors)
    if redactor is None or scope is None:
        return scope
    return _scope(redactor, scope, None)


def _named(redactor: Redactor, name: str, given: Any, counts: Counter[str]) -> Any:
    if name in ("user", "session", "key") and isinstance(given, str):
        return _same(given, redactor.identifier(given, counts))
    if name in ("namespace", "prefix") and _names(given):
        labels = tuple(redactor.identifier(n, counts) for n in given)
        return given if labels == tuple(given) else labels
    if name == "scope":
        if isinstance(given, Scope):
            return _same(given, _scope(redactor, given, counts))
        if isinstance(given, dict):
            return _same(given, _fields(redactor, given, ("user", "session"), counts))
    if name in ("filters", "fence"):
        if isinstance(given, Filters):
            raw = given.model_dump(exclude_defaults=True)
            done = _filters(redactor, raw)
            return given if done == raw else given.model_copy(update=done)
        if isinstance(given, dict):
            return _same(given, _filters(redactor, given))
    return given


def _filters(redactor: Redactor, given: dict[str, Any]) -> dict[str, Any]:
    done = _fields(redactor, given, ("user", "session"), None)
    if _names(given.get("namespace")):
        done["namespace"] = tuple(redactor.identifier(n) for n in given["namespace"])
    tags = given.get("tags")
    if isinstance(tags, str):
        done["tags"] = redactor.identifier(tags)
    elif _names(tags):
        done["tags"] = [redactor.identifier(t) for t in tags]
    for name in ("metadata", "value"):
        if isinstance(given.get(name), dict):
            done[name] = redactor.value(given[name])
    return done


def _fields(
    redactor: Redactor, given: dict[str, Any], names: tuple[str, ...], counts: Counter[str] | None
) -> dict[str, Any]:
    done = dict(given)
    for name in names:
        if isinstance(given.get(name), str):
            done[name] = redactor.identifier(given[name], counts)
    return done


def _scope(redactor: Redactor, scope: Scope, counts: Counter[str] | None) -> Scope:
    names = {
        name: redactor.identifier(getattr(scope, name), counts)
        for name in ("user", "session")
        if getattr(scope, name) is not None
    }
    if all(getattr(scope, k) == v for k, v in names.items()):
        return scope
    return scope.model_copy(update=names)


def _names(value: Any) -> TypeGuard[Sequence[str]]:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _same(given: Any, done: Any) -> Any:
    return given if done == given else done


def _count(ctx: Context, counts: Counter[str]) -> None:
    if not counts:
        return
    ctx.redactions.update(counts)
    outer = _counting.get()
    if outer is not None:
        outer.update(counts)
