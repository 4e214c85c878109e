"""The typed errors cubemem raises. Every message says what was wrong and what to do.

``http_status`` is what the REST API answers for each (the remote client maps it back)."""

from __future__ import annotations

from typing import ClassVar


class CubememError(Exception):
    """Base class of every error cubemem raises on purpose."""

    http_status: ClassVar[int] = 500


class InvalidInputError(CubememError, ValueError):
    """An argument was malformed; nothing was written."""

    http_status = 422


class InvalidFilterError(InvalidInputError):
    """A search or list filter named an unknown key or held a value of the wrong type."""


class NotFoundError(CubememError, LookupError):
    """The memory (or cube) asked for does not exist."""

    http_status = 404


class ConflictError(CubememError):
    """A versioned write named a version that is no longer current: another writer changed the
    memory since it was read. Nothing was written; re-read it and decide again."""

    http_status = 409

    def __init__(self, message: str, ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.ids: list[str] = list(ids or [])


class FollowUpError(CubememError):
    """The memories were stored, but work that follows a write (extraction, consolidation)
    failed. ``ids`` are the stored memories; the message says how to run the step again."""

    http_status = 500

    def __init__(self, message: str, ids: list[str]) -> None:
        super().__init__(message)
        self.ids: list[str] = list(ids)


class ExtractionError(CubememError):
    """A model's output could not be read as facts, even after a repair round. The turns it
    was reading are stored; the scheduler retries the extract task, then dead-letters it."""

    http_status = 502


class PermissionDeniedError(CubememError, PermissionError):
    """The acting agent lacks the right this operation needs (the message names it); nothing
    was written. A cube admin grants rights (``cubemem grant``, ``PUT .../grants/{agent}``)."""

    http_status = 403


class AuthenticationError(PermissionDeniedError):
    """No API key was given, or the server knows none like it (HTTP 401)."""

    http_status = 401


class IncompatibleCubeError(CubememError):
    """The cube on disk cannot be opened as asked (another embedder, a newer format, not a cube)."""

    http_status = 409


class NotACubeError(IncompatibleCubeError):
    """The path holds no cube manifest."""


class InvalidArchiveError(IncompatibleCubeError):
    """An archive is corrupt, too large when inflated, or holds a record ``add`` would refuse;
    nothing was imported."""


class CubeCorruptError(IncompatibleCubeError):
    """A cube's files are damaged beyond what cubemem rebuilds by itself (the rows database
    is missing or unreadable); nothing was changed. The message names the file."""


class BackendUnavailableError(CubememError, RuntimeError):
    """A storage backend, index or model could not be reached or loaded."""

    http_status = 503


class RateLimitedError(BackendUnavailableError):
    """The server refused a call because this agent is over its request rate or its number of
    open waits; nothing was done. Retry after ``retry_after`` seconds (HTTP 429)."""

    http_status = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HeldLimitError(RateLimitedError):
    """The agent already has ``Settings.max_held_per_agent`` writes held for review in the cube
    (quarantined memories and proposed changes): nothing was written. An admin approves or
    rejects some (``cube.approve``, ``cube.reject``, the inspector's review page) before it
    writes more that would be held (HTTP 429)."""


class BackpressureError(BackendUnavailableError):
    """A cube's background queue is at ``Settings.max_queue_depth``: the write was not
    queued. Retry later, write with ``wait=True``, or run more workers (HTTP 503)."""

    http_status = 503


class CubeBusyError(BackendUnavailableError):
    """Another connection held the cube's database for longer than ``Settings.busy_timeout_s``;
    nothing was written, and the call can be retried."""

    http_status = 503


class InvalidBlockError(CubememError, ValueError):
    """A KV block or adapter file is malformed or fails its integrity check (tampered,
    truncated, a cache that does not belong to its text, an adapter that does not fit the
    model); it was not loaded."""

    http_status = 422


class IncompatibleModelError(CubememError, ValueError):
    """A KV block (activation memory) was built by another model, tokenizer, dtype or
    transformers version than the one it is being used with, or an adapter (parametric memory)
    was trained on another base model; rebuild or retrain it for this model."""
