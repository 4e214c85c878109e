"""One validation layer for what may be stored or asked: every public entry point (add, put,
update, import, filters, the CLI and the adapters' tools, which call these) runs its input
through here *before* anything is written or acknowledged, so a background write that was
acknowledged can always be stored.

Text must be valid Unicode (no lone surrogates: it could not be written as UTF-8) without NUL
(SQLite, JSON and the vector index disagree about it); numbers must fit a 64-bit integer or be
finite; structures are bounded in depth and size; dates must stay representable in UTC.
"""

from __future__ import annotations

import math
import reprlib
from datetime import datetime, timedelta
from typing import Any

from cubemem.errors import InvalidInputError

MAX_ID_CHARS = 256
MAX_LABEL_CHARS = 1024
"""Scope fields, tags, speaker, namespace labels, keys, metadata keys, source ids."""
MAX_TAGS = 256
MAX_KEYS = 1024
"""Entries in a metadata dict, a value document (all levels), or a filter's conditions."""
MAX_FILTER_KEYS = 256
"""Conditions in one filter's metadata or value part."""
MAX_DEPTH = 32
MAX_INT = 2**63 - 1
MAX_TTL = timedelta(days=365 * 100)

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlevel = 3


def shown(value: Any) -> str:
    """``repr`` for an error message: short, and safe for values nested thousands deep."""
    try:
        return _SHOWN.repr(value)
    except Exception:  # a hostile __repr__
        return f"<{type(value).__name__}>"


def text(value: Any, what: str, *, max_chars: int | None = MAX_LABEL_CHARS) -> str:
    """A str that can be stored: valid Unicode, no NUL, at most ``max_chars``."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} holds a lone surrogate and is not valid Unicode; decode the source with "
            "errors='replace' or fix it"
        ) from None
    if max_chars is not None and len(value) > max_chars:
        raise InvalidInputError(f"{what} is {len(value)} characters, over the limit of {max_chars}")
    return value


def number(value: Any, what: str) -> Any:
    """An int within 64 bits, or a finite float (bools and None pass)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise InvalidInputError(f"{what} is {value}, outside the 64-bit integer range")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"{what} is {value}; NaN and infinities cannot be stored as JSON")
    return value


def json_value(value: Any, what: str, *, max_keys: int = MAX_KEYS) -> Any:
    """A JSON document of bounded depth and size, with storable text and numbers."""
    budget = [max_keys]

    def walk(node: Any, where: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"{what} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            budget[0] -= len(node)
            if budget[0] < 0:
                raise InvalidInputError(f"{what} holds more than {max_keys} entries")
            for key, child in node.items():
                text(key, f"{where} key", max_chars=MAX_LABEL_CHARS)
                walk(child, f"{where}.{key}", depth + 1)
        elif isinstance(node, list | tuple):
            budget[0] -= len(node)
            if budget[0] < 0:
                raise InvalidInputError(f"{what} holds more than {max_keys} entries")
            for child in node:
                walk(child, where, depth + 1)
        elif isinstance(node, str):
            text(node, where, max_chars=None)
        elif isinstance(node, int | float | bool) or node is None:
            number(node, where)
        else:
            raise InvalidInputError(
                f"{where} is a {type(node).__name__}; use str, number, bool, None, list or dict"
            )

    walk(value, what, 0)
    return value


def moment(value: datetime | None, what: str) -> datetime | None:
    """A datetime that survives conversion to UTC and to a POSIX timestamp."""
    if value is None:
        return None
    try:
        value.timestamp()
        if value.utcoffset() is not None:
            value - value.utcoffset()  # type: ignore[operator]
    except (OverflowError, ValueError, OSError):
        raise InvalidInputError(
            f"{what} {shown(value)} is outside the representable range"
        ) from None
    return value


def ttl(value: timedelta | None, what: str = "ttl") -> timedelta | None:
    if value is not None and value > MAX_TTL:
        raise InvalidInputError(f"{what} is longer than {MAX_TTL.days} days")
    return value


def count(value: Any, what: str, *, minimum: int = 0) -> int:
    """An int for a limit, offset or k: within 32 bits, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{what} must be an int >= {minimum}, got {shown(value)}")
    if value > 2**31 - 1:
        raise InvalidInputError(f"{what} is {value}, over the limit of {2**31 - 1}")
    return value


def item(memory: Any, max_content_bytes: int) -> Any:
    """Every field of a ``MemoryItem`` storable (what ``add`` checks, for ``import_`` too)."""
    text(memory.id, "memory id", max_chars=MAX_ID_CHARS)
    if not memory.id.strip():
        raise InvalidInputError("memory id is empty")
    text(memory.cube, "cube id", max_chars=MAX_ID_CHARS)
    content = text(memory.content, "memory content", max_chars=None)
    if not content.strip():
        raise InvalidInputError("memory content is empty or whitespace; pass some text")
    if len(content.encode("utf-8")) > max_content_bytes:
        raise InvalidInputError(
            f"memory content is over the limit of {max_content_bytes} bytes; split it into "
            "smaller memories or raise CUBEMEM_MAX_CONTENT_BYTES"
        )
    if memory.context is not None:
        text(memory.context, "context", max_chars=None)
    for field in ("user", "agent", "session"):
        label = getattr(memory.scope, field)
        if label is not None:
            text(label, f"scope.{field}")
    provenance = memory.provenance
    for field in ("source", "author_agent", "speaker", "origin_cube"):
        label = getattr(provenance, field)
        if label is not None:
            text(label, f"provenance.{field}")
    for source in provenance.source_ids:
        text(source, "a source id")
    if memory.changed_by is not None:
        text(memory.changed_by, "changed_by")
    if len(memory.tags) > MAX_TAGS:
        raise InvalidInputError(f"a memory takes at most {MAX_TAGS} tags, got {len(memory.tags)}")
    for tag in memory.tags:
        text(tag, "a tag")
    if len(memory.merged_from) > MAX_KEYS:
        raise InvalidInputError(f"merged_from holds more than {MAX_KEYS} ids")
    for other in (memory.parent_id, memory.superseded_by, *memory.merged_from):
        if other is not None:
            text(other, "a memory id", max_chars=MAX_ID_CHARS)
    json_value(memory.metadata, "metadata")
    if memory.namespace is not None:
        for label in memory.namespace:
            text(label, "a namespace label")
            if any(ord(ch) < 0x20 for ch in label):
                raise InvalidInputError(
                    f"namespace label {shown(label)} contains a control character"
                )
    if memory.key is not None:
        text(memory.key, "key")
    if memory.value is not None:
        json_value(memory.value, "value")
    for field in ("expires_at", "updated_at"):
        moment(getattr(memory, field), field)
    moment(provenance.created_at, "created_at")
    moment(provenance.occurred_at, "occurred_at")
    moment(memory.usage.last_access, "last_access")
    ttl(memory.ttl)
    return memory
