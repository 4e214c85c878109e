"""The default queue: a SQLite file in the cube (or the MemoryOS root)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cubemem.errors import BackendUnavailableError
from cubemem.scheduler.tasks import DeadTask, QueueStats, Task
from cubemem.sqlite import immediate

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
            self._db.execute("PRAGMA secure_delete=ON")  # a done task's text does not linger
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

    def scrub(self, keep: Callable[[Task], Task | str | None]) -> list[str]:
        now, held, changed = time.time(), [], False
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, kind, payload, attempts, created_at, state, lease_until FROM tasks"
            ).fetchall()
            for id_, kind, payload, a, c, state, lease_until in rows:
                task = Task(id=id_, kind=kind, payload=json.loads(payload), attempts=a)
                task.created_at = c
                kept = keep(task)
                if kept is task:
                    continue
                if kept == "wait" and state == "dead":
                    continue  # a dead letter waits for nobody: kept until replayed
                if kept == "wait" or (state == "leased" and (lease_until or 0) >= now):
                    held.append(id_)
                    continue
                if kept is None:
                    db.execute("DELETE FROM tasks WHERE id = ?", (id_,))
                else:
                    assert isinstance(kept, Task)
                    db.execute(
                        "UPDATE tasks SET payload = ? WHERE id = ?", (json.dumps(kept.payload), id_)
                    )
                changed = True
        if changed:  # the old pages' text leaves the write-ahead log too (secure_delete: the file)
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return held

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
