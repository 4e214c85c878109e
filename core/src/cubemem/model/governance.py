"""Governance values: what a forget reports (ids and counts, never content), a cube's
redaction policy and its retention rules."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cubemem.model import Filters


class Forgotten(BaseModel):
    """The outcome of ``forget``."""

    ids: list[str] = Field(
        default_factory=list, description="Every memory erased: those asked for and derived."
    )
    derived: list[str] = Field(
        default_factory=list,
        description="Of those, the ones derived from the forgotten memories (facts extracted "
        "only from them, summaries citing them).",
    )
    uncited: list[str] = Field(
        default_factory=list,
        description="Facts kept because other memories support them, whose citations of the "
        "forgotten ones were removed.",
    )

    @property
    def count(self) -> int:
        return len(self.ids)


PiiKind = Literal["email", "phone", "card", "iban", "national_id", "ip", "api_key"]
KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "national_id", "ip", "api_key")
Action = Literal["off", "mask", "drop", "hash"]


class RedactionPolicy(BaseModel):
    """What a cube does with each kind of personal data before anything is stored, queued or
    embedded (``cubemem.redact``): ``off``, ``mask`` (``[EMAIL]``), ``drop`` (removed) or
    ``hash`` (``[EMAIL:1f3a9c0e2b7d]``, keyed by ``salt``: the same value, the same token)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: Action = "off"
    phone: Action = "off"
    card: Action = "off"
    iban: Action = "off"
    national_id: Action = "off"
    ip: Action = "off"
    api_key: Action = "off"
    phone_region: str = Field(
        "US", description="Where numbers without a + are read as national numbers (ISO 3166)."
    )
    salt: str = Field(
        default_factory=lambda: secrets.token_hex(16),
        description="The key of ``hash`` (per cube: the same value hashes alike only here).",
    )

    @classmethod
    def all(cls, action: Action = "mask", **others: Any) -> RedactionPolicy:
        """Every kind with ``action`` (``others`` override single fields)."""
        return cls(**{k: action for k in KINDS} | others)

    def action(self, kind: str) -> Action:
        return getattr(self, kind, "off")

    def actions(self) -> set[Action]:
        return {self.action(k) for k in KINDS}

    @property
    def active(self) -> bool:
        return self.actions() != {"off"}

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not (len(value) == 2 and value.isalpha()):
            raise ValueError(f"phone_region must be a two-letter country code, got {value!r}")
        return value.upper()


class RetentionRule(BaseModel):
    """How long the memories ``filters`` match are kept (``cubemem.ops.retention``): each
    expiry is a ``forget`` (with what derives from them), run by the scheduler's lifecycle
    sweep. Give one or more of ``keep_days``, ``keep_last`` and ``forget_deleted``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="Names the rule in reports.")
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description="Which memories: user, agent, session, tags, kind, metadata, namespace… "
        "(as search filters; any status unless they say).",
    )
    keep_days: float | None = Field(
        None, gt=0, description="Forget those whose event time is older than this."
    )
    keep_last: int | None = Field(
        None, ge=0, description="Keep the newest this many (by event time), forget the rest."
    )
    forget_deleted: bool = Field(
        False, description="Forget those that were deleted (a deleted session goes for good)."
    )

    @model_validator(mode="after")
    def _something(self) -> RetentionRule:
        if self.keep_days is None and self.keep_last is None and not self.forget_deleted:
            raise ValueError("a rule needs keep_days, keep_last or forget_deleted")
        Filters.parse(self.filters)  # InvalidFilterError says what is wrong
        return self


class Expiry(BaseModel):
    """What one retention rule forgot (or, in a dry run, would forget): ids, never content."""

    rule: str
    ids: list[str] = Field(default_factory=list)
    derived: list[str] = Field(default_factory=list)
    dry_run: bool = False

    @property
    def count(self) -> int:
        return len(self.ids)
