"""Checks on what callers hand to operations: each returns clean values or raises
``InvalidInputError`` saying what to fix, before anything is written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cubemem import limits
from cubemem.errors import InvalidInputError
from cubemem.limits import shown
from cubemem.model import (
    MemoryInput,
    MetadataValue,
    Scope,
    as_utc,
    check_json,
    check_namespace,
    validate_model,
)

ScopeLike = Scope | dict[str, str | None] | None


def as_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
        raise InvalidInputError(f"{what} must be a list, got {type(value).__name__}")
    return list(value)


def memory_input(raw: Any) -> MemoryInput:
    if isinstance(raw, MemoryInput):
        return raw
    if isinstance(raw, str):
        return MemoryInput(content=raw)
    if isinstance(raw, dict):
        return validate_model(MemoryInput, raw)
    raise InvalidInputError(
        f"memory content must be a str, got {type(raw).__name__}; convert it to text first"
    )


def scope(value: ScopeLike) -> Scope:
    if value is None:
        return Scope()
    parsed = value if isinstance(value, Scope) else validate_model(Scope, value)
    for field in ("user", "agent", "session"):
        label = getattr(parsed, field)
        if label is not None:
            limits.text(label, f"scope.{field}")
    return parsed


def tags(value: Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(t, str) and t.strip() for t in value):
        raise InvalidInputError(f"tags must be a list of non-empty strings, got {shown(value)}")
    if len(value) > limits.MAX_TAGS:
        raise InvalidInputError(f"a memory takes at most {limits.MAX_TAGS} tags, got {len(value)}")
    return list(dict.fromkeys(limits.text(t, "a tag").strip() for t in value))


def metadata(value: dict[str, MetadataValue] | None) -> dict[str, MetadataValue]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError("metadata must be a dict with string keys")
    bad = {k: v for k, v in value.items() if not isinstance(v, str | int | float | bool | None)}
    if bad:
        raise InvalidInputError(
            f"metadata values must be str, int, float, bool or None; got {shown(bad)}"
        )
    limits.json_value(value, "metadata")
    check_json(value)
    return dict(value)


def timestamp(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return limits.moment(value, "timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"timestamp must be a datetime or ISO 8601 string, got {shown(value)}"
        ) from None
    return limits.moment(parsed, "timestamp")


def moment(value: datetime | str | None, what: str) -> datetime | None:
    """A point in time: a datetime or an ISO 8601 string, in UTC. A time without an offset is
    taken as UTC, everywhere in cubemem (docs/time-and-entities.md)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(
                f"{what} must be a datetime or an ISO 8601 string, got {shown(value)}"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidInputError(
            f"{what} must be a datetime or an ISO 8601 string, got {shown(value)}"
        )
    return as_utc(limits.moment(value, what) or value)


def valid_window(
    valid_from: datetime | str | None, valid_to: datetime | str | None
) -> tuple[datetime | None, datetime | None]:
    """A valid time ``[valid_from, valid_to)``: each a moment, the end after the start."""
    start, end = moment(valid_from, "valid_from"), moment(valid_to, "valid_to")
    if start is not None and end is not None and end <= start:
        raise InvalidInputError(
            f"valid_to ({end.isoformat()}) must be after valid_from ({start.isoformat()}): "
            "a valid time is [valid_from, valid_to)"
        )
    return start, end


def positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{what} must be a positive int, got {shown(value)}")
    return limits.count(value, what, minimum=1)


def non_negative(value: Any, what: str) -> float:
    """A finite number of seconds, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise InvalidInputError(f"{what} must be a number of seconds >= 0, got {shown(value)}")
    return float(value)


def memory_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"memory id must be a non-empty str, got {shown(value)}")
    return limits.text(value, "memory id", max_chars=limits.MAX_ID_CHARS)


def memory_ids(value: Any) -> list[str]:
    """A list of memory ids, each checked like ``memory_id``; duplicates dropped."""
    ids = as_list(value, "ids")
    if len(ids) > 100_000:
        raise InvalidInputError(f"at most 100000 ids at once, got {len(ids)}")
    return list(dict.fromkeys(memory_id(i) for i in ids))


def expected_version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"expected_version must be an int >= 1, got {shown(value)}")
    return value


def namespace(value: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    return check_namespace(
        tuple(value) if isinstance(value, list) else value, allow_empty=allow_empty
    )


def key(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"key must be a non-empty str, got {shown(value)}")
    return limits.text(value, "key")


def ttl(value: Any) -> timedelta | None:
    if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
        raise InvalidInputError(f"ttl must be a positive timedelta, got {shown(value)}")
    return limits.ttl(value)


def value_document(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError("value must be a dict with string keys")
    limits.json_value(value, "value")  # bounds first: json.dumps recurses without a limit
    check_json(value)
    return value
