"""What the entity graph answers: entities, the relations between them, a neighbourhood."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class EntityRef(BaseModel):
    """An entity named in a relation."""

    id: str
    name: str


class Entity(BaseModel):
    """A person, place, organisation or thing the memories mention, resolved per owner."""

    id: str
    name: str = Field(description="Its fullest name.")
    kind: str = Field(description="person, place, organisation or thing.")
    aliases: list[str] = Field(default_factory=list, description="Every name it was seen by.")
    owner: str | None = Field(None, description="The user (else agent) whose memories these are.")
    memories: int = Field(description="How many memories you may see mention it.")
    memory_ids: list[str] = Field(
        default_factory=list, description="The latest of those (at most 20), newest first."
    )
    valid_from: datetime | None = Field(None, description="The earliest mention's valid time.")
    valid_to: datetime | None = Field(
        None, description="The end of the latest mention's valid time (None: still current)."
    )
    merged_from: list[str] = Field(
        default_factory=list, description="Entities merged into it (``split_entity`` undoes)."
    )


class Relation(BaseModel):
    """Two entities that memories mention together, citing those memories. ``valid_from`` and
    ``valid_to`` span the citing memories' valid times."""

    source: EntityRef
    target: EntityRef
    kind: str = Field(
        "mentioned_with",
        description="How they are related: what extracted facts state (lives_in), else "
        "mentioned_with.",
    )
    weight: int = Field(description="How many memories relate them.")
    memory_ids: list[str] = Field(description="The memories it comes from, newest first.")
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class Neighbourhood(BaseModel):
    """An entity, the entities within ``hops`` relations of it, and those relations."""

    center: Entity
    entities: list[Entity]
    relations: list[Relation]


class EntityLink(BaseModel):
    """One decision about entity resolution, kept in the cube's store (append-only, so the
    log is the history): ``merge`` makes ``source`` count as ``target``; ``split`` undoes
    the last merge of ``source``."""

    action: Literal["merge", "split"]
    source: str
    target: str | None = None
    at: datetime
    by: str | None = Field(None, description="The agent that decided (None: the local path).")
    seq: int = Field(0, description="Its place in the log (set by the store).")
