"""Durable task queues behind one protocol: SQLite (default, in the cube) and Redis Streams.

Delivery is at least once: a task claimed by a worker that dies comes back after its lease
(SQLite: at once when its process is gone; Redis: ``XAUTOCLAIM`` of idle pending entries), so
handlers are idempotent. ``put`` returns only when the tasks are durable.
"""

from __future__ import annotations

from pathlib import Path

from cubemem.errors import InvalidInputError
from cubemem.scheduler.redis_queue import RedisQueue
from cubemem.scheduler.sqlite_queue import SQLiteQueue
from cubemem.scheduler.tasks import DeadTask, QueueStats, Task, TaskKind, TaskQueue, consumer_name

__all__ = [
    "DeadTask",
    "QueueStats",
    "RedisQueue",
    "SQLiteQueue",
    "Task",
    "TaskKind",
    "TaskQueue",
    "consumer_name",
    "open_queue",
]


def open_queue(
    url: str, cube_path: Path, cube_id: str, *, sync: str = "full", busy_timeout_s: float = 60.0
) -> TaskQueue:
    """The queue ``url`` names: ``sqlite`` (a file in the cube) or ``redis://host:port/db``."""
    if url == "sqlite":
        return SQLiteQueue(cube_path / "queue.sqlite3", sync=sync, busy_timeout_s=busy_timeout_s)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisQueue(url, cube_id)
    raise InvalidInputError(
        f"unknown queue {url!r}; use 'sqlite' or a redis:// URL (CUBEMEM_QUEUE_URL)"
    )


# -- SQLite ---------------------------------------------------------------------------------
