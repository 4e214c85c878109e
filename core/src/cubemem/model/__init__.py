"""The vocabulary: what a memory is, where it came from, and what a search returns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from cubemem import limits
from cubemem.errors import InvalidFilterError, InvalidInputError
from cubemem.limits import shown
from cubemem.model.base import (
    NAMESPACE_SEPARATOR,
    TIER_KEY,
    Kind,
    Provenance,
    Scope,
    Status,
    StrictModel,
    Usage,
    address_id,
    as_utc,
    check_json,
    check_namespace,
    decode_namespace,
    encode_namespace,
    first_error,
    new_id,
    utcnow,
    validate_content,
    validate_model,
)

__all__ = [
    "NAMESPACE_SEPARATOR",
    "TIER_KEY",
    "Filters",
    "Kind",
    "MemoryInput",
    "MemoryItem",
    "Message",
    "MetadataValue",
    "Provenance",
    "Scope",
    "SearchResult",
    "Status",
    "StrictModel",
    "Usage",
    "address_id",
    "as_utc",
    "check_json",
    "check_namespace",
    "decode_namespace",
    "encode_namespace",
    "new_id",
    "utcnow",
    "validate_content",
    "validate_model",
]

MetadataValue = str | int | float | bool | None


class MemoryItem(StrictModel):
    """One memory with its provenance, version and lifecycle; the unit every store keeps."""

    id: str = Field(default_factory=new_id)
    cube: str
    content: str
    kind: Kind = Kind.PLAINTEXT
    scope: Scope = Field(default_factory=Scope)
    provenance: Provenance = Field(default_factory=Provenance)
    version: int = Field(1, ge=1)
    parent_id: str | None = Field(None, description="The memory this one was derived from.")
    superseded_by: str | None = Field(None, description="The memory that replaced this one.")
    merged_from: list[str] = Field(
        default_factory=list,
        description="Memories consolidated into this one; each has superseded_by set to it.",
    )
    status: Status = Status.ACTIVE
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    expires_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    context: str | None = Field(
        None, description="Neighbouring text seen at ingestion; indexed with the content."
    )
    namespace: tuple[str, ...] | None = Field(
        None, description="Hierarchical address of a keyed memory (see ``MemCube.put``)."
    )
    key: str | None = Field(None, description="Key of a keyed memory within its namespace.")
    value: dict[str, Any] | None = Field(
        None, description="Structured document a keyed memory holds; content is its text."
    )
    ttl: timedelta | None = Field(
        None, description="Sliding lifetime: ``MemCube.refresh`` moves expires_at to now + ttl."
    )
    decision: Literal["ADD", "UPDATE", "DUPLICATE", "CONTRADICT"] | None = Field(
        None, description="How extraction placed this version among what the cube believed."
    )
    decision_reason: str | None = Field(None, description="Why, in the decider's words.")
    valid_from: datetime | None = Field(None, description="Valid time: true in the world from.")
    valid_to: datetime | None = Field(None, description="Valid time: true until (exclusive).")
    changed_by: str | None = Field(
        None, description="The agent that wrote this version (None: the local, unidentified path)."
    )

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        cleaned = [tag.strip() for tag in tags]
        if not all(cleaned):
            raise ValueError("tags must be non-empty strings")
        return list(dict.fromkeys(cleaned))

    @property
    def event_time(self) -> datetime:
        """When the remembered thing happened: the session time if known, else creation."""
        return self.provenance.occurred_at or self.provenance.created_at

    @property
    def valid_since(self) -> datetime:
        """The start of its valid time: ``valid_from`` (older cubes: the event time)."""
        return self.valid_from or self.event_time

    def valid_at(self, moment: datetime) -> bool:
        """Whether it was true at ``moment``: ``valid_since <= moment < valid_to``."""
        return self.valid_since <= moment and (self.valid_to is None or moment < self.valid_to)

    @property
    def recorded_at(self) -> datetime:
        """Transaction time: when the cube recorded this version (the next one retired it)."""
        return self.updated_at


class MemoryInput(StrictModel):
    """What a caller supplies to ``MemCube.add``; the cube fills in the rest."""

    content: Any
    scope: Scope | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    source_ids: list[str] = Field(default_factory=list)
    speaker: str | None = None
    occurred_at: datetime | None = None
    expires_at: datetime | None = None
    trust: float = Field(1.0, ge=0.0, le=1.0)
    context: str | None = None
    valid_from: datetime | None = Field(
        None, description="True in the world from (default: occurred_at, else now)."
    )
    valid_to: datetime | None = Field(None, description="True until, exclusive.")


class Message(StrictModel):
    """A conversation turn for ``MemCube.add_messages``; ``role``/``text``/``dia_id`` accepted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    speaker: str = Field(validation_alias=AliasChoices("speaker", "role", "name"))
    content: Any = Field(validation_alias=AliasChoices("content", "text"))
    id: str | None = Field(None, validation_alias=AliasChoices("id", "dia_id", "message_id"))
    timestamp: datetime | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class SearchResult(BaseModel):
    """A memory returned by search: its ranking score, and how well it matches on its own.

    ``score`` orders the results of one search (dense + BM25 + a share of neighbouring turns'
    scores); it has no fixed scale. ``relevance`` in [0, 1] does: the better of the dense
    cosine and the BM25 share, comparable across searches and cubes — threshold on it
    (``search(..., min_score=0.3)``).
    """

    item: MemoryItem
    score: float
    relevance: float = Field(0.0, ge=0.0, le=1.0, description="Own match with the query.")
    dense_score: float | None = Field(None, description="Cosine similarity with the query.")
    lexical_score: float | None = Field(
        None, description="BM25 score as a share of the query's ideal score, in [0, 1]."
    )
    time_score: float = Field(0.0, description="What the query's time words added to score.")
    entity_score: float = Field(0.0, description="What the entity graph added to score.")
    cube_name: str | None = Field(None, description="The cube it came from (MemoryOS.search).")

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def content(self) -> str:
        return self.item.content

    @property
    def provenance(self) -> Provenance:
        return self.item.provenance


class Filters(StrictModel):
    """What search and list may be narrowed by. Unknown keys are an error."""

    user: str | None = None
    agent: str | None = None
    session: str | None = None
    tags: list[str] = Field(default_factory=list, description="All of these tags.")
    status: list[Status] = Field(default_factory=lambda: [Status.ACTIVE])
    kind: Kind | None = None
    after: datetime | None = Field(None, description="Event time at or after this.")
    before: datetime | None = Field(None, description="Event time before this.")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Match metadata fields: equality, or operators $eq $ne $gt $gte $lt $lte "
        "$in $nin.",
    )
    namespace: tuple[str, ...] | None = Field(
        None, description="Keyed memories under this namespace prefix; () means any namespace."
    )
    value: dict[str, Any] = Field(
        default_factory=dict,
        description="Match fields of a keyed memory's value: equality, nested dicts, or "
        "operators $eq $ne $gt $gte $lt $lte $in $nin.",
    )
    include_expired: bool = False

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Status) else value

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_or_tags(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("namespace", mode="before")
    @classmethod
    def _namespace(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check_namespace(value, allow_empty=True)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def everything(cls) -> Filters:
        """Every memory: any status, expired or not."""
        return cls(status=list(Status), include_expired=True)

    @classmethod
    def parse(cls, filters: Filters | dict[str, Any] | None) -> Filters:
        """Validate user-supplied filters, naming the allowed keys when one is unknown."""
        if filters is None:
            return cls()
        if isinstance(filters, Filters):
            return filters.checked()
        if not isinstance(filters, dict):
            raise InvalidFilterError(
                f"filters must be a dict, got {type(filters).__name__}; "
                f"allowed keys: {', '.join(cls.model_fields)}"
            )
        unknown = sorted(set(filters) - set(cls.model_fields))
        if unknown:
            raise InvalidFilterError(
                f"unknown filter key(s) {unknown}; allowed keys: {', '.join(cls.model_fields)}"
            )
        try:
            parsed = cls.model_validate(filters)
        except ValidationError as exc:
            raise InvalidFilterError(f"invalid filter value: {first_error(exc)}") from None
        return parsed.checked()

    def checked(self) -> Filters:
        """These filters, if every value can be asked of the store (``cubemem.limits``):
        storable text, 64-bit numbers, bounded sizes and depths, representable dates."""
        try:
            for field in ("user", "agent", "session"):
                label = getattr(self, field)
                if label is not None:
                    limits.text(label, field)
            if len(self.tags) > limits.MAX_TAGS:
                raise InvalidInputError(f"at most {limits.MAX_TAGS} tags, got {len(self.tags)}")
            for tag in self.tags:
                limits.text(tag, "a tag")
            for label in self.namespace or ():
                limits.text(label, "a namespace label")
            # each condition is one SQL term: SQLite refuses expression trees past 1000 deep
            limits.json_value(self.metadata, "metadata filter", max_keys=limits.MAX_FILTER_KEYS)
            limits.json_value(self.value, "value filter", max_keys=limits.MAX_FILTER_KEYS)
            limits.moment(self.after, "after")
            limits.moment(self.before, "before")
        except InvalidFilterError:
            raise
        except InvalidInputError as exc:
            raise InvalidFilterError(str(exc)) from None
        return self

    def narrow(self, extra: Filters | dict[str, Any] | None) -> Filters:
        """These filters AND ``extra``: what a per-call filter does to a bound one.

        A key set here can only be narrowed — the same user/agent/session/kind/namespace
        (or a deeper namespace), more tags, a later ``after``, an earlier ``before``, a
        subset of statuses, further metadata/value conditions — never replaced; a call that
        names another user than the bound one raises ``InvalidFilterError`` instead of
        returning someone else's memories. Keys not set here are the call's to choose.
        """
        if extra is None:
            return self
        other = Filters.parse(extra)
        bound, given = self.model_fields_set, other.model_fields_set
        merged: dict[str, Any] = {name: getattr(self, name) for name in bound}
        for name in given:
            value = getattr(other, name)
            if name not in bound:
                merged[name] = value
                continue
            mine = getattr(self, name)
            if name in ("user", "agent", "session", "kind"):
                if mine is not None and value is not None and value != mine:
                    raise InvalidFilterError(
                        f"these filters are bound to {name}={shown(mine)}; a call may narrow them "
                        f"but not ask for {name}={shown(value)}"
                    )
                merged[name] = mine if mine is not None else value
            elif name == "tags":
                merged[name] = list(dict.fromkeys([*mine, *value]))
            elif name == "status":
                merged[name] = [s for s in mine if s in value]
                if not merged[name]:
                    raise InvalidFilterError(
                        f"these filters are bound to status {[s.value for s in mine]}; a call "
                        f"may narrow them but not ask for {[s.value for s in value]}"
                    )
            elif name == "after":
                merged[name] = value if mine is None or (value and value > mine) else mine
            elif name == "before":
                merged[name] = value if mine is None or (value and value < mine) else mine
            elif name == "namespace":
                merged[name] = _deeper_namespace(mine, value)
            elif name in ("metadata", "value"):
                merged[name] = _and_conditions(mine, value, name)
            elif name == "include_expired":
                merged[name] = mine and value
        return Filters.model_validate(merged)

    @property
    def bound(self) -> dict[str, Any]:
        """The keys these filters set explicitly, with their values (for messages and logs)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


def _deeper_namespace(
    mine: tuple[str, ...] | None, other: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    if mine is None or other is None:
        return mine if other is None else other
    short, long = (mine, other) if len(mine) <= len(other) else (other, mine)
    if long[: len(short)] != short:
        raise InvalidFilterError(
            f"these filters are bound to namespace {shown(mine)}; a call may ask for a namespace "
            f"under it but not {shown(other)}"
        )
    return long


def _as_conditions(wanted: Any) -> dict[str, Any]:
    if isinstance(wanted, dict) and any(str(k).startswith("$") for k in wanted):
        return dict(wanted)
    return {"$eq": wanted}


def _and_conditions(mine: dict[str, Any], other: dict[str, Any], where: str) -> dict[str, Any]:
    """Both sets of field conditions at once; one operator twice on a field must agree."""
    merged = dict(mine)
    for key, wanted in other.items():
        if key not in merged:
            merged[key] = wanted
            continue
        ours = merged[key]
        if (
            isinstance(ours, dict)
            and isinstance(wanted, dict)
            and not any(str(k).startswith("$") for k in (*ours, *wanted))
        ):
            merged[key] = _and_conditions(ours, wanted, f"{where}.{key}")
            continue
        a, b = _as_conditions(ours), _as_conditions(wanted)
        clash = [op for op in set(a) & set(b) if a[op] != b[op]]
        if clash:
            raise InvalidFilterError(
                f"these filters are bound to {where}.{key} {shown(ours)}; a call may add "
                f"conditions but not replace it with {shown(wanted)}"
            )
        merged[key] = {**a, **b}
    return merged
