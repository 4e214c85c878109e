"""MemScheduler: durable background memory work (see docs/scheduler.md).

- ``queue``: the task queue protocol, SQLite and Redis Streams engines
- ``scheduler``: worker threads, idempotent handlers, wait/status/retry
- ``consolidate``: near-duplicate merging (and undo)
- ``lifecycle``: expiry and decay to the archive
- ``working``: per agent/session hot sets with change hooks
"""

from cubemem.scheduler.consolidate import Merge, MergeDecision, MergePolicy, undo_merge
from cubemem.scheduler.lifecycle import LifecycleReport
from cubemem.scheduler.queue import (
    DeadTask,
    QueueStats,
    RedisQueue,
    SQLiteQueue,
    Task,
    TaskKind,
    TaskQueue,
    open_queue,
)
from cubemem.scheduler.scheduler import Scheduler, SchedulerStatus
from cubemem.scheduler.working import WorkingMemory, WorkingSetChange

__all__ = [
    "DeadTask",
    "LifecycleReport",
    "Merge",
    "MergeDecision",
    "MergePolicy",
    "QueueStats",
    "RedisQueue",
    "SQLiteQueue",
    "Scheduler",
    "SchedulerStatus",
    "Task",
    "TaskKind",
    "TaskQueue",
    "WorkingMemory",
    "WorkingSetChange",
    "open_queue",
    "undo_merge",
]
