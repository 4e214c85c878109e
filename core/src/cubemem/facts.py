"""What the extractor asks a model for and reads back: ``Fact`` (one durable statement, with
its subject and, where it relates two entities, its relation and object), the JSON schema
sent with the request, and ``parse_facts``, tolerant of what models answer.
``cubemem.extract`` re-exports them."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cubemem.errors import ExtractionError

__all__ = ["FENCE", "SCHEMA", "Fact", "FactKind", "Facts", "parse_facts"]

FactKind = Literal["preference", "fact", "event", "plan", "relationship", "other"]


class Fact(BaseModel):
    """One durable statement a model extracted from conversation turns."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=2000, description="One self-contained sentence.")
    subject: str | None = Field(None, max_length=200, description="Who or what it is about.")
    relation: str | None = Field(
        None, max_length=80, description="How the subject relates to ``object`` (lives_in)."
    )
    object: str | None = Field(None, max_length=200, description="The other entity, if any.")
    kind: FactKind = "fact"
    time: str | None = Field(None, description="When it happened or holds, ISO date, if said.")
    confidence: float = Field(1.0, ge=0.0, le=1.0)
    source_ids: list[str] = Field(default_factory=list, description="Ids of the cited turns.")

    @field_validator("text")
    @classmethod
    def _one_line(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("a fact needs text")
        return value

    @field_validator("relation")
    @classmethod
    def _predicate(cls, value: str | None) -> str | None:
        """``"Lives In"`` and ``"lives-in"`` are ``lives_in``."""
        if value is None:
            return None
        words = re.findall(r"[^\W_]+", value.casefold())
        return "_".join(words) or None

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        kinds = ("preference", "fact", "event", "plan", "relationship", "other")
        return value if value in kinds else "other"

    @field_validator("source_ids", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


class Facts(BaseModel):
    facts: list[Fact] = Field(default_factory=list)


SCHEMA: dict[str, Any] = Facts.model_json_schema()

FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_facts(text: str) -> list[Fact]:
    """The facts in a model's answer: tolerant of code fences, prose around the JSON, a bare
    list, or ``{"facts": ...}``; raises ``ExtractionError`` saying what was wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ExtractionError("the model answered nothing")
    candidates = [m.group(1) for m in FENCE.finditer(text)] + [text]
    error = "no JSON object in the answer"
    for candidate in candidates:
        openers = sorted(
            (position, opener) for opener in ("{", "[") if (position := candidate.find(opener)) >= 0
        )
        for start, opener in openers:  # the outermost JSON value comes first
            try:
                value, _ = json.JSONDecoder().raw_decode(candidate[start:])
            except json.JSONDecodeError as exc:
                error = f"invalid JSON after {opener!r}: {exc.msg} (column {exc.colno})"
                continue
            if isinstance(value, list):
                value = {"facts": value}
            elif isinstance(value, dict) and "facts" not in value and "text" in value:
                value = {"facts": [value]}  # one fact on its own
            if not isinstance(value, dict) or "facts" not in value:
                error = 'the JSON is not {"facts": [...]}'
                continue
            try:
                return Facts.model_validate(value).facts
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                error = f"the JSON does not match the schema: {where}: {err['msg']}"
    raise ExtractionError(error)
