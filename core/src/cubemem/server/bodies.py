"""The REST API's request and response models (validated by FastAPI before a route runs).

A request body that stands for a cube operation says which one: ``op()`` gives the
operation's value (``cubemem.cube.operations``), which the route hands to the caller's cube as
it is (``cube.run(body.op())``). Scopes and memories are the library's own models.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import cubemem.cube.operations as operations
from cubemem import errors
from cubemem.access import Agent, Right
from cubemem.manifest import Manifest
from cubemem.model import MemoryInput, MemoryItem, Scope, SearchResult

MAX_BODY_BYTES = 4 << 20
MAX_RESULTS = 100
"""Largest ``k`` of a search and ``limit`` of a page."""
MAX_BATCH = 1000
"""Most memories or messages one write may carry."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeBody(Scope):
    __doc__ = None  # the schema's, as before: no description


class MemoryBody(MemoryInput):
    """One memory with its own provenance (``cubemem.MemoryInput``)."""

    content: str
    scope: ScopeBody | None = None


class AddBody(_Body):
    content: str | list[str | MemoryBody] | MemoryBody = Field(
        description="A text, a memory with provenance, or a list of them (at most 1000)."
    )
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    wait: bool = Field(False, description="Store before answering (201) instead of queueing.")
    valid_from: datetime | None = Field(
        None, description="True in the world from (default: when it occurred, else now)."
    )
    valid_to: datetime | None = Field(None, description="True until, exclusive.")

    def op(self, idempotency_key: str | None) -> operations.Add:
        if isinstance(self.content, list) and not 0 < len(self.content) <= MAX_BATCH:
            raise errors.InvalidInputError(f"content holds 1 to {MAX_BATCH} memories")
        return operations.Add(
            content=self.content,
            scope=self.scope,
            tags=self.tags,
            metadata=self.metadata,
            wait=self.wait,
            idempotency_key=idempotency_key,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
        )


class MessageBody(_Body):
    speaker: str
    content: str
    id: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class MessagesBody(_Body):
    messages: list[MessageBody] = Field(max_length=MAX_BATCH)
    session: str | None = None
    timestamp: datetime | None = None
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    wait: bool = False

    def op(self, idempotency_key: str | None) -> operations.AddMessages:
        return operations.AddMessages(
            messages=[m.model_dump(exclude_none=True) for m in self.messages],
            session=self.session,
            timestamp=self.timestamp,
            scope=self.scope,
            tags=self.tags,
            metadata=self.metadata,
            wait=self.wait,
            idempotency_key=idempotency_key,
        )


class Written(BaseModel):
    ids: list[str]
    status: Literal["queued", "stored"]
    items: list[MemoryItem] = Field(default_factory=list)


class SearchBody(_Body):
    query: str
    k: int = Field(10, ge=1, le=MAX_RESULTS)
    filters: dict[str, Any] | None = None
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    include_superseded: bool = False
    as_of: datetime | None = Field(None, description="What was true at this moment.")
    known_at: datetime | None = Field(None, description="The cube as recorded at this moment.")

    def op(self) -> operations.Search:
        return operations.Search(
            query=self.query,
            k=self.k,
            filters=self.filters,
            min_score=self.min_score,
            include_superseded=self.include_superseded,
            as_of=self.as_of,
            known_at=self.known_at,
        )


class MultiSearchBody(SearchBody):
    cubes: list[str] | None = None

    def across(self) -> operations.SearchCubes:
        return operations.SearchCubes(search=self.op(), cubes=self.cubes)


class Results(BaseModel):
    results: list[SearchResult]


class ListBody(_Body):
    filters: dict[str, Any] | None = None
    limit: int = Field(100, ge=1, le=MAX_RESULTS)
    offset: int = Field(0, ge=0, le=2**31 - 1)

    def op(self) -> operations.List:
        """One more than a page: whether there is a next one."""
        return operations.List(filters=self.filters, limit=self.limit + 1, offset=self.offset)


class Page(BaseModel):
    items: list[MemoryItem]
    next_offset: int | None = Field(description="Offset of the next page; null on the last.")

    @classmethod
    def of(cls, items: list[MemoryItem], limit: int, offset: int) -> Page:
        """The page of ``limit`` from ``limit + 1`` items read at ``offset``."""
        more = len(items) > limit
        return cls(items=items[:limit], next_offset=offset + limit if more else None)


class UpdateBody(_Body):
    content: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    scope: ScopeBody | None = None
    expires_at: datetime | None = None
    expected_version: int | None = Field(None, ge=1)
    valid_from: datetime | None = Field(
        None, description="A change in the world from then on: a successor memory."
    )

    def op(self, id: str) -> operations.Update:
        return operations.Update(
            id=id,
            content=self.content,
            tags=self.tags,
            metadata=self.metadata,
            scope=self.scope,
            expires_at=self.expires_at,
            expected_version=self.expected_version,
            valid_from=self.valid_from,
        )


class InvalidateBody(_Body):
    at: datetime | None = Field(None, description="When the fact stopped being true (now).")
    expected_version: int | None = Field(None, ge=1)

    def op(self, id: str) -> operations.Invalidate:
        return operations.Invalidate(id=id, at=self.at, expected_version=self.expected_version)


class ForgetBody(_Body):
    ids: list[str] | None = Field(None, description="Memories to erase, with what they led to.")
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    filters: dict[str, Any] | None = Field(
        None, description="Erase what these match (any status unless filters say)."
    )

    def op(self) -> operations.Forget:
        return operations.Forget(**self.model_dump())


class PutBody(_Body):
    namespace: list[str]
    key: str
    content: str
    value: dict[str, Any] | None = None
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    ttl_s: float | None = Field(None, gt=0, le=100 * 365 * 86400)

    def op(self) -> operations.Put:
        return operations.Put(
            namespace=tuple(self.namespace),
            key=self.key,
            content=self.content,
            value=self.value,
            scope=self.scope,
            tags=self.tags,
            metadata=self.metadata,
            ttl=None if self.ttl_s is None else timedelta(seconds=self.ttl_s),
        )


class KeyBody(_Body):
    namespace: list[str]
    key: str

    def op(self) -> operations.Lookup:
        return operations.Lookup(namespace=tuple(self.namespace), key=self.key)


class IdsBody(_Body):
    ids: list[str] = Field(max_length=MAX_BATCH)


class WaitBody(IdsBody):
    timeout_s: float = Field(30.0, gt=0, le=60)

    def op(self, timeout: float | None = None) -> operations.Wait:
        wanted = self.timeout_s if timeout is None else timeout
        return operations.Wait(ids=self.ids, timeout=wanted)


class NamespacesBody(_Body):
    prefix: list[str] = Field(default_factory=list)
    filters: dict[str, Any] | None = None

    def op(self) -> operations.Namespaces:
        return operations.Namespaces(prefix=tuple(self.prefix), filters=self.filters)

    def count(self) -> operations.Count:
        return operations.Count(filters=self.filters)


class Found(BaseModel):
    item: MemoryItem | None


class CubeInfo(BaseModel):
    manifest: Manifest
    right: Right = Field(description="The caller's right on the cube.")


class NewCube(_Body):
    name: str


class NewAgent(_Body):
    name: str
    trust: float = Field(0.5, ge=0.0, le=1.0)
    operator: bool = False


class AgentKey(BaseModel):
    agent: Agent
    key: str = Field(description="The API key: shown this once, stored only as a hash.")


class AgentChange(_Body):
    trust: float | None = Field(None, ge=0.0, le=1.0)
    disabled: bool | None = None
    operator: bool | None = None


class GrantBody(_Body):
    right: Right
    scope: ScopeBody | None = None


class PolicyBody(_Body):
    trust_threshold: float = Field(ge=0.0, le=1.0)


class Waited(BaseModel):
    done: bool


class ErrorDetail(BaseModel):
    type: str
    message: str
    ids: list[str] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (401, "No API key, or an unknown one"),
        (403, "The agent lacks the right"),
        (404, "No such cube or memory"),
        (409, "Version conflict"),
        (413, "Request body too large"),
        (422, "Invalid input"),
        (503, "Backend busy or unavailable; retry"),
    ]
}


class EntitiesBody(_Body):
    query: str | None = Field(None, description="Entities whose names hold all these words.")
    name: str | None = Field(None, description="Entities of this name or alias (any case).")
    kind: Literal["person", "place", "organisation", "thing"] | None = None
    filters: dict[str, Any] | None = None
    as_of: datetime | None = Field(None, description="In memories true at this moment.")
    limit: int = Field(20, ge=1, le=MAX_RESULTS)

    def op(self) -> operations.Entities:
        return operations.Entities(**self.model_dump(exclude_unset=True))


class RelationsBody(_Body):
    entity: str = Field(description="An entity id, or a name.")
    filters: dict[str, Any] | None = None
    as_of: datetime | None = None
    limit: int = Field(20, ge=1, le=MAX_RESULTS)

    def op(self) -> operations.Relations:
        return operations.Relations(**self.model_dump(exclude_unset=True))


class NeighbourhoodBody(RelationsBody):
    hops: int = Field(2, ge=1, le=4)
    limit: int = Field(50, ge=1, le=MAX_RESULTS)

    def op(self) -> operations.Neighbourhood:  # type: ignore[override]
        return operations.Neighbourhood(**self.model_dump(exclude_unset=True))


class MergeBody(_Body):
    source: str = Field(description="The entity (id or name) to resolve as the target.")
    target: str

    def op(self) -> operations.MergeEntities:
        return operations.MergeEntities(source=self.source, target=self.target)


class SplitBody(_Body):
    entity: str = Field(description="An entity merged into another, or one others were.")

    def op(self) -> operations.SplitEntity:
        return operations.SplitEntity(entity=self.entity)
