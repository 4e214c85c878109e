"""The REST API's request and response models (validated by FastAPI before a route runs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cubemem.access import Agent, Right
from cubemem.manifest import Manifest
from cubemem.model import MemoryItem, SearchResult

MAX_BODY_BYTES = 4 << 20
MAX_RESULTS = 100
"""Largest ``k`` of a search and ``limit`` of a page."""
MAX_BATCH = 1000
"""Most memories or messages one write may carry."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeBody(_Body):
    user: str | None = None
    agent: str | None = None
    session: str | None = None


class MemoryBody(_Body):
    """One memory with its own provenance (``cubemem.MemoryInput``)."""

    content: str
    scope: ScopeBody | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    source_ids: list[str] = Field(default_factory=list)
    speaker: str | None = None
    occurred_at: datetime | None = None
    expires_at: datetime | None = None
    trust: float = Field(1.0, ge=0.0, le=1.0)
    context: str | None = None


class AddBody(_Body):
    content: str | list[str | MemoryBody] | MemoryBody = Field(
        description="A text, a memory with provenance, or a list of them (at most 1000)."
    )
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    wait: bool = Field(False, description="Store before answering (201) instead of queueing.")


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


class MultiSearchBody(SearchBody):
    cubes: list[str] | None = None


class Results(BaseModel):
    results: list[SearchResult]


class ListBody(_Body):
    filters: dict[str, Any] | None = None
    limit: int = Field(100, ge=1, le=MAX_RESULTS)
    offset: int = Field(0, ge=0, le=2**31 - 1)


class Page(BaseModel):
    items: list[MemoryItem]
    next_offset: int | None = Field(description="Offset of the next page; null on the last.")


class UpdateBody(_Body):
    content: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    scope: ScopeBody | None = None
    expires_at: datetime | None = None
    expected_version: int | None = Field(None, ge=1)


class PutBody(_Body):
    namespace: list[str]
    key: str
    content: str
    value: dict[str, Any] | None = None
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    ttl_s: float | None = Field(None, gt=0, le=100 * 365 * 86400)


class KeyBody(_Body):
    namespace: list[str]
    key: str


class IdsBody(_Body):
    ids: list[str] = Field(max_length=MAX_BATCH)


class WaitBody(IdsBody):
    timeout_s: float = Field(30.0, gt=0, le=60)


class NamespacesBody(_Body):
    prefix: list[str] = Field(default_factory=list)
    filters: dict[str, Any] | None = None


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
