"""Durable task queues behind one protocol: SQLite (default, in the cube) and Redis Streams.

Delivery is at least once: a task claimed by a worker that dies comes back after its lease
(SQLite: at once when its process is gone; Redis: ``XAUTOCLAIM`` of idle pending entries), so
handlers are idempotent. ``put`` returns only when the tasks are durable.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from cubemem.errors import BackendUnavailableError, InvalidInputError
from cubemem.sqlite import immediate


class TaskKind(StrEnum):
    ADD = "add"  # store (embed + write + index) memories whose ids were acknowledged
    EXTRACT = "extract"  # run the cube's extractor over raw turns (cubemem.ops.followup)
    CONSOLIDATE = "consolidate"  # merge near-duplicates of these memories
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

    def stats(self) -> QueueStats: ...

    def close(self) -> None: ...


def consumer_name() -> str:
    """host:pid:thread — unique per worker thread, and says which process holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


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
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    available_at REAL NOT NULL,
    lease_until REAL,
    consumer TEXT,
    error TEXT,
    failed_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (state, available_at);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (key, value) VALUES ('done', 0);
"""


class SQLiteQueue:
    """Tasks in a SQLite file (WAL): safe across threads and processes of one machine."""

    def __init__(self, path: Path, *, sync: str = "full", busy_timeout_s: float = 60.0) -> None:
        self.url = "sqlite"
        self._path = Path(path)
        self._sync = sync.upper()
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        try:
            self._db = sqlite3.connect(
                self._path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # Claims and acks need no fsync: if one is lost the task is delivered again, and
            # handlers are idempotent. Only put, the acknowledgement of a write, syncs.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(f"BEGIN IMMEDIATE;{_SQLITE_SCHEMA}COMMIT;")
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"cannot open task queue {self._path}: {exc}") from exc
        self._recover()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db, self._lock, f"the task queue {self._path}")

    def _recover(self) -> None:
        """Leases held by processes of this host that no longer run come back at once."""
        host = socket.gethostname()
        with self._transaction() as db:
            rows = db.execute("SELECT id, consumer FROM tasks WHERE state = 'leased'").fetchall()
            dead = [id_ for id_, consumer in rows if _dead_local(consumer, host)]
            db.executemany(
                "UPDATE tasks SET state = 'ready', lease_until = NULL WHERE id = ?",
                [(i,) for i in dead],
            )

    def put(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        with self._lock:  # the pragma and the commit it governs, together
            self._db.execute(f"PRAGMA synchronous={self._sync}")
            try:
                with self._transaction() as db:
                    self._insert(db, tasks)
            finally:
                self._db.execute("PRAGMA synchronous=NORMAL")
        with self._wakeup:
            self._wakeup.notify_all()

    @staticmethod
    def _insert(db: sqlite3.Connection, tasks: Sequence[Task]) -> None:
        now = time.time()
        db.executemany(
            "INSERT OR IGNORE INTO tasks (id, kind, payload, attempts, created_at, "
            "state, available_at) VALUES (?, ?, ?, ?, ?, 'ready', ?)",
            [
                (t.id, t.kind.value, json.dumps(t.payload), t.attempts, t.created_at, now)
                for t in tasks
            ],
        )

    def claim(self, consumer: str, limit: int, lease_s: float, block_s: float) -> list[Task]:
        deadline = time.monotonic() + block_s
        while True:
            tasks = self._claim(consumer, limit, lease_s)
            remaining = deadline - time.monotonic()
            if tasks or remaining <= 0:
                return tasks
            with self._wakeup:  # other processes' puts are seen at the next poll
                self._wakeup.wait(min(remaining, 0.05))

    def _claim(self, consumer: str, limit: int, lease_s: float) -> list[Task]:
        now = time.time()
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, kind, payload, attempts, created_at FROM tasks "
                "WHERE (state = 'ready' AND available_at <= ?) "
                "OR (state = 'leased' AND lease_until < ?) "
                "ORDER BY created_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE tasks SET state = 'leased', lease_until = ?, consumer = ? WHERE id = ?",
                [(now + lease_s, consumer, row[0]) for row in rows],
            )
        return [
            Task(id=id_, kind=kind, payload=json.loads(payload), attempts=a, created_at=c)
            for id_, kind, payload, a, c in rows
        ]

    def ack(self, tasks: Sequence[Task], then: Sequence[Task] = ()) -> None:
        if not tasks and not then:
            return
        with self._lock:  # the pragma and the commit it governs, together
            if then:  # new durable work: synced like put
                self._db.execute(f"PRAGMA synchronous={self._sync}")
            try:
                with self._transaction() as db:
                    db.executemany("DELETE FROM tasks WHERE id = ?", [(t.id,) for t in tasks])
                    db.execute(
                        "UPDATE counters SET value = value + ? WHERE key = 'done'", (len(tasks),)
                    )
                    self._insert(db, then)
            finally:
                if then:
                    self._db.execute("PRAGMA synchronous=NORMAL")
        if then:
            with self._wakeup:
                self._wakeup.notify_all()

    def retry(self, task: Task, error: str, delay_s: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET state = 'ready', attempts = attempts + 1, available_at = ?, "
                "lease_until = NULL, error = ? WHERE id = ?",
                (time.time() + delay_s, error, task.id),
            )

    def bury(self, task: Task, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET state = 'dead', attempts = attempts + 1, error = ?, "
                "failed_at = ?, lease_until = NULL WHERE id = ?",
                (error, time.time(), task.id),
            )

    def dead_letters(self) -> list[DeadTask]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, payload, attempts, created_at, error, failed_at FROM tasks "
                "WHERE state = 'dead' ORDER BY failed_at"
            ).fetchall()
        return [
            DeadTask(
                task=Task(id=i, kind=k, payload=json.loads(p), attempts=a, created_at=c),
                error=e or "",
                failed_at=f or 0.0,
            )
            for i, k, p, a, c, e, f in rows
        ]

    def replay(self, task_ids: Sequence[str] | None = None) -> int:
        where = "state = 'dead'"
        params: list[Any] = [time.time()]
        if task_ids is not None:
            where += f" AND id IN ({', '.join('?' * len(task_ids))})"
            params.extend(task_ids)
        with self._transaction() as db:
            count = db.execute(
                f"UPDATE tasks SET state = 'ready', attempts = 0, available_at = ?, error = NULL "
                f"WHERE {where}",
                params,
            ).rowcount
        with self._wakeup:
            self._wakeup.notify_all()
        return count

    def stats(self) -> QueueStats:
        with self._lock:
            counts = dict(
                self._db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall()
            )
            done = self._db.execute("SELECT value FROM counters WHERE key = 'done'").fetchone()[0]
        return QueueStats(
            ready=counts.get("ready", 0),
            in_flight=counts.get("leased", 0),
            dead=counts.get("dead", 0),
            done=done,
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _dead_local(consumer: str | None, host: str) -> bool:
    if not consumer:
        return True
    parts = consumer.split(":")
    if len(parts) < 2 or parts[0] != host:
        return False  # another machine's lease: wait for it to expire
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


# -- Redis Streams --------------------------------------------------------------------------
_MOVE_DUE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'task', ARGV[1])
    return 1
end
return 0
"""


class RedisQueue:
    """A Redis stream per cube with one consumer group: many processes and machines.

    Keys: ``cubemem:{cube}:tasks`` (stream), ``:delayed`` (retries, a sorted set by due time),
    ``:dead`` (hash task id → failure), ``:done`` (counter). A worker that dies leaves its
    entries pending; any worker reclaims entries idle longer than the lease (``XAUTOCLAIM``).
    Durability is Redis's: run it with ``appendonly yes`` and ``appendfsync always`` for an
    acknowledged write to survive a Redis crash.
    """

    GROUP = "workers"

    def __init__(self, url: str, cube_id: str) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis is a core dependency
            raise BackendUnavailableError("the redis package is needed for a redis queue") from exc
        self.url = url
        prefix = f"cubemem:{cube_id}"
        self._stream, self._delayed = f"{prefix}:tasks", f"{prefix}:delayed"
        self._dead, self._done = f"{prefix}:dead", f"{prefix}:done"
        # Any: redis-py's stubs type replies for bytes and str clients alike; this one decodes.
        self._redis: Any = redis.Redis.from_url(url, decode_responses=True)
        self._move = self._redis.register_script(_MOVE_DUE)
        try:
            self._redis.xgroup_create(self._stream, self.GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise BackendUnavailableError(f"redis queue {url}: {exc}") from exc
        except redis.RedisError as exc:
            raise BackendUnavailableError(f"cannot reach redis at {url}: {exc}") from exc

    @staticmethod
    def _encode(task: Task) -> dict[str, str]:
        return {"task": task.model_dump_json()}

    @staticmethod
    def _decode(entry_id: str, fields: dict[str, str]) -> Task:
        task = Task.model_validate_json(fields["task"])
        task.receipt = entry_id
        return task

    def put(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        pipe = self._redis.pipeline(transaction=False)
        for task in tasks:
            pipe.xadd(self._stream, self._encode(task))
        pipe.execute()

    def claim(self, consumer: str, limit: int, lease_s: float, block_s: float) -> list[Task]:
        self._release_due()
        tasks: list[Task] = []
        _, reclaimed, _ = self._redis.xautoclaim(
            self._stream, self.GROUP, consumer, min_idle_time=int(lease_s * 1000), count=limit
        )
        tasks += [self._decode(i, f) for i, f in reclaimed if f]
        if len(tasks) < limit:
            block = None if tasks else max(1, int(block_s * 1000))
            read = self._redis.xreadgroup(
                self.GROUP, consumer, {self._stream: ">"}, count=limit - len(tasks), block=block
            )
            for _, entries in read or []:
                tasks += [self._decode(i, f) for i, f in entries if f]
        return tasks

    def _release_due(self) -> None:
        """Retries whose delay is over go back on the stream: one mover wins each, and the move
        is one atomic step (a task is never out of both, which ``stats`` would count as done)."""
        due = self._redis.zrangebyscore(self._delayed, "-inf", time.time(), start=0, num=100)
        for member in due:
            self._move(keys=[self._delayed, self._stream], args=[member])

    def _finish(self, receipts: list[str]) -> None:
        if receipts:
            pipe = self._redis.pipeline(transaction=True)
            pipe.xack(self._stream, self.GROUP, *receipts)
            pipe.xdel(self._stream, *receipts)
            pipe.execute()

    def ack(self, tasks: Sequence[Task], then: Sequence[Task] = ()) -> None:
        receipts = [t.receipt for t in tasks if t.receipt]
        if not receipts and not then:
            return
        pipe = self._redis.pipeline(transaction=True)  # MULTI/EXEC: all of it or none
        for task in then:
            pipe.xadd(self._stream, self._encode(task))
        if receipts:
            pipe.xack(self._stream, self.GROUP, *receipts)
            pipe.xdel(self._stream, *receipts)
            pipe.incrby(self._done, len(receipts))
        pipe.execute()

    def retry(self, task: Task, error: str, delay_s: float) -> None:
        again = task.model_copy(update={"attempts": task.attempts + 1})
        self._redis.zadd(self._delayed, {again.model_dump_json(): time.time() + delay_s})
        self._finish([task.receipt] if task.receipt else [])

    def bury(self, task: Task, error: str) -> None:
        dead = DeadTask(
            task=task.model_copy(update={"attempts": task.attempts + 1}),
            error=error,
            failed_at=time.time(),
        )
        self._redis.hset(self._dead, task.id, dead.model_dump_json())
        self._finish([task.receipt] if task.receipt else [])

    def dead_letters(self) -> list[DeadTask]:
        found = [DeadTask.model_validate_json(v) for v in self._redis.hvals(self._dead)]
        return sorted(found, key=lambda d: d.failed_at)

    def replay(self, task_ids: Sequence[str] | None = None) -> int:
        count = 0
        for dead in self.dead_letters():
            if task_ids is not None and dead.task.id not in task_ids:
                continue
            if self._redis.hdel(self._dead, dead.task.id):
                self._redis.xadd(
                    self._stream, self._encode(dead.task.model_copy(update={"attempts": 0}))
                )
                count += 1
        return count

    def stats(self) -> QueueStats:
        # one MULTI: a snapshot, so a task moving between the delayed set and the stream is
        # never counted in neither (which would make a waiter think the queue had drained)
        pipe = self._redis.pipeline(transaction=True)
        pipe.xpending(self._stream, self.GROUP)
        pipe.xlen(self._stream)
        pipe.zcard(self._delayed)
        pipe.hlen(self._dead)
        pipe.get(self._done)
        pending, length, delayed, dead, done = pipe.execute()
        return QueueStats(
            ready=length - pending["pending"] + delayed,
            in_flight=pending["pending"],
            dead=dead,
            done=int(done or 0),
        )

    def close(self) -> None:
        self._redis.close()
