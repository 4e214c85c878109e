"""MemScheduler: durable background memory work (see docs/scheduler.md).

- ``queue``: the task queue protocol, SQLite and Redis Streams engines
- ``scheduler``: worker threads, idempotent handlers over ``cubemem.ops``, wait/status/retry

The work itself (consolidation, lifecycle, working memory, follow-ups) lives in ``cubemem.ops``;
its names are re-exported here for the scheduler's users.
"""

from cubemem.ops.consolidate import Merge, MergeDecision, MergePolicy
from cubemem.ops.lifecycle import LifecycleReport
from cubemem.ops.working import WorkingMemory, WorkingSetChange
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
from cubemem.scheduler.scheduler import Cubes, OneCube, Scheduler, SchedulerStatus, add_task

__all__ = [
    "Cubes",
    "DeadTask",
    "LifecycleReport",
    "Merge",
    "MergeDecision",
    "MergePolicy",
    "OneCube",
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
    "add_task",
    "open_queue",
]
