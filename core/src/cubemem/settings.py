"""The one settings object; every field can be set by a ``CUBEMEM_`` environment variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
_PROVIDER_PREFIXES = ("sentence-transformers:", "sentence_transformers:", "huggingface:", "hf:")
_OTHER_PREFIXES = ("openai:", "langchain:", "llamaindex:", "function:", "custom:")


def model_name(name: str) -> str:
    """One spelling of a sentence-transformers model name: LangChain/LangGraph's
    ``provider:model`` (``sentence-transformers:all-MiniLM-L6-v2``) and a bare name
    (``all-MiniLM-L6-v2``, which sentence-transformers reads as its own hub organisation) both
    become ``sentence-transformers/all-MiniLM-L6-v2``; paths, ``org/model`` names and other
    kinds of embedder (``openai:...``) are kept as they are."""
    if name.startswith(_OTHER_PREFIXES):
        return name
    for prefix in _PROVIDER_PREFIXES:
        name = name.removeprefix(prefix)
    if "/" in name or "\\" in name or name.startswith(".") or not name:
        return name
    return name if Path(name).exists() else f"sentence-transformers/{name}"


class Settings(BaseSettings):
    """Defaults that work offline on one machine."""

    model_config = SettingsConfigDict(env_prefix="CUBEMEM_", extra="forbid")

    embedder: str = Field(DEFAULT_EMBEDDER, description="Sentence-transformers model name or path.")
    max_content_bytes: int = Field(1 << 20, gt=0, description="Largest memory text, UTF-8 bytes.")
    embed_batch_size: int = Field(64, gt=0, description="Texts embedded per model call.")
    device: str | None = Field(None, description="Torch device for the embedder (default: auto).")

    # -- scheduler (cubemem.scheduler) ----------------------------------------------------
    busy_timeout_s: float = Field(
        30.0, gt=0, description="How long a write waits for another writer's SQLite lock."
    )
    open_index: bool = Field(
        True,
        description="Embedded engine: take the cube's Chroma vector index when the cube opens. "
        "False leaves it to the first search that needs it, so a process that only lists, shows, "
        "exports or deletes never loads Chroma (the CLI's reading commands).",
    )
    store_url: str = Field(
        "sqlite",
        description="Where rows and vectors live: 'sqlite' or 'sqlite:///DATA_ROOT' (the cube "
        "folder: SQLite + Chroma), 'postgresql://user:password@host/db' (PostgreSQL + pgvector; "
        "the folder keeps the manifest) or 'chroma+http://host:port' (rows in the cube folder, "
        "vectors in a Chroma server).",
    )
    pg_index_memory: str = Field(
        "4GB",
        pattern=r"^[1-9][0-9]*(kB|MB|GB)$",
        description="PostgreSQL: maintenance_work_mem for the session that builds the HNSW "
        "index (its own session only; the server's setting is left alone). The graph must fit "
        "in it or the build slows ~50x: 2GB held about 10^6 vectors of 384 dimensions, then "
        "spilled (measured); the memory is taken only as the graph grows.",
    )
    pg_index_workers: int = Field(
        1,
        ge=0,
        le=64,
        description="PostgreSQL: parallel workers for the HNSW build beside the leader "
        "(max_parallel_maintenance_workers, that session only).",
    )
    queue_url: str = Field(
        "sqlite",
        description="Task queue: 'sqlite' (a file in the cube) or 'redis://host:port/db'.",
    )
    queue_sync: str = Field(
        "full",
        pattern="^(full|normal)$",
        description="SQLite queue fsync: 'full' survives power loss, 'normal' survives kill -9.",
    )
    workers: int = Field(1, ge=0, description="In-process worker threads (0: enqueue only).")
    exit_drain_s: float = Field(
        10.0,
        ge=0,
        description="At interpreter exit, how long running workers may keep draining the "
        "queue before they stop (what is left stays queued, durable, for the next run).",
    )
    forget_drain_s: float = Field(
        60.0,
        ge=0,
        description="A forget first waits this long for the writes this process has queued "
        "to land (so they are forgotten too, not stored after it).",
    )
    max_archive_bytes: int = Field(
        1 << 30,
        gt=0,
        description="Largest total an archive may inflate to on import (zip-bomb cap).",
    )
    task_batch: int = Field(64, gt=0, description="Tasks a worker claims at once.")
    task_lease_s: float = Field(30.0, gt=0, description="A claimed task returns after this.")
    max_attempts: int = Field(5, gt=0, description="Tries before a task is dead-lettered.")
    retry_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each try.")
    consolidate: bool = Field(False, description="Merge near-duplicate facts as they arrive.")
    merge_similarity: float = Field(0.9, ge=0, le=1, description="Cosine needed to merge.")
    merge_overlap: float = Field(0.6, ge=0, le=1, description="Word overlap needed to merge.")
    lifecycle_interval_s: float = Field(
        300.0, gt=0, description="How often workers archive expired and cold memories."
    )
    decay_half_life_days: float = Field(30.0, gt=0, description="Recency half-life.")
    archive_below: float = Field(0.05, ge=0, description="Decay score under which to archive.")
    working_memory_size: int = Field(32, gt=0, description="Hot memories kept per agent/session.")
    max_queue_depth: int = Field(
        100_000,
        gt=0,
        description="Background tasks a cube may have waiting; a write with wait=False beyond "
        "it raises BackpressureError instead of queueing.",
    )
    max_held_per_agent: int = Field(
        1000,
        gt=0,
        description="Writes one agent may have held for review in a cube (quarantined memories "
        "and proposed changes); a write that would hold more raises HeldLimitError.",
    )
    rate_limit_per_minute: int = Field(
        6000, gt=0, description="Requests one agent may make to a server per minute."
    )
    login_attempts_per_minute: int = Field(
        10, gt=0, description="Inspector logins one client address may try a minute."
    )
    max_waits_per_agent: int = Field(
        8, gt=0, description="Long polls (/wait) one agent may keep open on a server at once."
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="How long a server waits for a request's body to arrive."
    )
