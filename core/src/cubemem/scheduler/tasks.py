"""What a queue holds: tasks, dead tasks, counts, and the ``TaskQueue`` protocol."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field


class TaskKind(StrEnum):
    ADD = "add"  # store (embed + write + index) memories whose ids were acknowledged
    EXTRACT = "extract"  # run the cube's extractor over raw turns (cubemem.ops.followup)
    CONSOLIDATE = "consolidate"  # merge near-duplicates of these memories
    SUMMARIZE = "summarize"  # summarize the sessions of these turns (cubemem.ops.summarize)
    EXPIRE = "expire"  # archive expired and cold memories
    PROMOTE = "promote"  # build a hot set's activation memory ahead of use (Scheduler.on_promote)


class Task(BaseModel):
    """A typed unit of background work; ``payload`` is JSON."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: TaskKind
    payload: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    created_at: float = Field(default_factory=time.time)
    receipt: str | None = Field(None, exclude=True, description="Queue-specific claim handle.")


class DeadTask(BaseModel):
    task: Task
    error: str
    failed_at: float


class QueueStats(BaseModel):
    ready: int = Field(description="Waiting to be claimed (including delayed retries).")
    in_flight: int = Field(description="Claimed by a worker, not yet acknowledged.")
    dead: int = Field(description="Failed max_attempts times; see dead_letters().")
    done: int = Field(description="Acknowledged since the queue was made.")


class TaskQueue(Protocol):
    url: str

    def put(self, tasks: Sequence[Task]) -> None:
        """Make ``tasks`` durable; return only when they would survive a crash."""

    def claim(self, consumer: str, limit: int, lease_s: float, block_s: float) -> list[Task]:
        """Up to ``limit`` tasks for ``consumer``, waiting up to ``block_s`` for some."""

    def ack(self, tasks: Sequence[Task], then: Sequence[Task] = ()) -> None:
        """The tasks are done and never delivered again; ``then`` (the work that follows
        them) becomes durable in the same step, so a crash keeps both or neither."""

    def retry(self, task: Task, error: str, delay_s: float) -> None:
        """Deliver ``task`` again after ``delay_s`` (attempts + 1)."""

    def bury(self, task: Task, error: str) -> None:
        """Move ``task`` to the dead-letter list."""

    def dead_letters(self) -> list[DeadTask]: ...

    def replay(self, task_ids: Sequence[str] | None = None) -> int:
        """Put dead tasks (all, or these) back on the queue with attempts reset."""

    def scrub(self, keep: Callable[[Task], Task | str | None]) -> list[str]:
        """Apply ``keep`` to every task: its answer replaces the task's payload, ``None`` drops
        the task, the task itself leaves it. Tasks a worker holds now are not changed: the ids
        of those ``keep`` would change, or answered ``"wait"`` for, are returned (a forget
        waits for them to be stored; ``cubemem.scheduler.scrub``). Dead letters too."""

    def stats(self) -> QueueStats: ...

    def close(self) -> None: ...


def consumer_name() -> str:
    """host:pid:thread — unique per worker thread, and says which process holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
