"""The words below the vocabulary: ids, namespaces, UTC times, the kinds and statuses of a
memory, the strict base model, and the validation of text and JSON. ``cubemem.model``
re-exports every name."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cubemem import limits
from cubemem.errors import InvalidInputError
from cubemem.limits import shown


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


_ADDRESS_NAMESPACE = uuid.UUID("6f1c3a52-8d4e-4b7a-9a57-0c2f1e3d4b6a")
NAMESPACE_SEPARATOR = "\x1f"


def address_id(namespace: tuple[str, ...], key: str) -> str:
    """The memory id of the keyed memory ``key`` in ``namespace`` (stable across processes)."""
    return uuid.uuid5(_ADDRESS_NAMESPACE, json.dumps([list(namespace), key])).hex


def check_namespace(namespace: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    """A namespace is a tuple of non-empty labels without control characters."""
    if isinstance(namespace, str) or not isinstance(namespace, tuple | list):
        raise InvalidInputError(
            f"namespace must be a tuple of str labels, got {shown(namespace)}; "
            "e.g. ('memories', 'ana')"
        )
    labels = tuple(namespace)
    if not labels and not allow_empty:
        raise InvalidInputError("namespace is empty; give at least one label")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise InvalidInputError(f"namespace labels must be non-empty str, got {shown(label)}")
        if any(ord(ch) < 0x20 for ch in label):
            raise InvalidInputError(f"namespace label {shown(label)} contains a control character")
        limits.text(label, "a namespace label")
    return labels


def encode_namespace(namespace: tuple[str, ...]) -> str:
    """Labels joined so that a namespace prefix is a string prefix (every label is closed)."""
    return "".join(label + NAMESPACE_SEPARATOR for label in namespace)


def decode_namespace(encoded: str) -> tuple[str, ...]:
    return tuple(encoded.split(NAMESPACE_SEPARATOR)[:-1])


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Kind(StrEnum):
    """The three forms a memory takes (MemOS): text, a model's KV cache, adapter weights."""

    PLAINTEXT = "plaintext"
    ACTIVATION = "activation"
    PARAMETRIC = "parametric"


TIER_KEY = "cubemem_tier"
"""Metadata key of the version that moved a memory to another kind: where to, and why."""


class Status(StrEnum):
    """Lifecycle state; only ``active`` memories are searched by default."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    DELETED = "deleted"
    QUARANTINED = "quarantined"
    SUPERSEDED = "superseded"
    """Contradicted by a newer fact (``superseded_by``): kept, with its ``valid_to``, and
    searched only with ``include_superseded=True``."""


class StrictModel(BaseModel):
    """Strict (unknown fields refused, assignments validated), datetimes in UTC."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        if not isinstance(value, datetime):
            return value
        try:
            return as_utc(value)
        except OverflowError:
            raise ValueError(f"{value.isoformat()} is outside the representable range") from None


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    return f"{where}: {err['msg']}"


def validate_content(content: Any, max_bytes: int, what: str = "memory content") -> str:
    """Return ``content`` if it is storable text, else raise ``InvalidInputError``."""
    if not isinstance(content, str):
        raise InvalidInputError(
            f"{what} must be a str, got {type(content).__name__}; convert it to text first"
        )
    if not content.strip():
        raise InvalidInputError(f"{what} is empty or whitespace; pass some text")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} holds a lone surrogate and is not valid Unicode; "
            "decode the source with errors='replace' or fix it"
        ) from None
    if size > max_bytes:
        raise InvalidInputError(
            f"{what} is {size} bytes, over the limit of {max_bytes}; split it into "
            "smaller memories or raise CUBEMEM_MAX_CONTENT_BYTES"
        )
    return content


def validate_model(model: type[StrictModel], value: Any) -> Any:
    """Validate ``value`` as ``model``, turning pydantic's error into ``InvalidInputError``."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {model.__name__}: {first_error(exc)}") from None


def check_json(metadata: dict[str, Any]) -> None:
    """Metadata must survive a JSON round trip unchanged."""
    try:
        json.dumps(metadata, allow_nan=False)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"metadata is not JSON-serialisable: {exc}") from None


class Scope(StrictModel):
    """Whose memory this is: a user, an agent, a session; any may be unset (shared)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str | None = None
    agent: str | None = None
    session: str | None = None

    def owner_filter(self) -> dict[str, str]:
        """Whose memories these are, as a filter: the user's (from any agent or session);
        the agent's own when there is no user; everything when neither is set. The one owner
        rule of extraction decisions, the tools, and both adapters' memories."""
        if self.user is not None:
            return {"user": self.user}
        if self.agent is not None:
            return {"agent": self.agent}
        return {}


class Provenance(StrictModel):
    """Where a memory came from and how far to trust it."""

    source: str = Field("api", description="How it entered: api, message, import, compose ...")
    author_agent: str | None = Field(None, description="The agent that wrote it.")
    source_ids: list[str] = Field(default_factory=list, description="Ids of source messages.")
    created_at: datetime = Field(default_factory=utcnow)
    trust: float = Field(1.0, ge=0.0, le=1.0)
    speaker: str | None = Field(None, description="Who said it, for conversation turns.")
    occurred_at: datetime | None = Field(None, description="When it happened (session time).")
    origin_cube: str | None = Field(None, description="Cube it was composed or imported from.")


class Usage(StrictModel):
    """How often a memory was returned by search, and when last."""

    hits: int = Field(0, ge=0)
    last_access: datetime | None = None
