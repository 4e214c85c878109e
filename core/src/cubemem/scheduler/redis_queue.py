"""A queue on Redis Streams (Valkey in the tests): many processes and machines."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cubemem.errors import BackendUnavailableError
from cubemem.scheduler.tasks import DeadTask, QueueStats, Task

_MOVE_DUE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'task', ARGV[1])
    return 1
end
return 0
"""

_SCRUB_ENTRY = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending > 0 then
    return 0
end
if redis.call('XDEL', KEYS[1], ARGV[2]) == 1 and ARGV[3] ~= '' then
    redis.call('XADD', KEYS[1], '*', 'task', ARGV[3])
end
return 1
"""
"""Drop (or replace by ARGV[3]) a stream entry unless a worker holds it: one atomic step."""


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
        self._scrub_entry = self._redis.register_script(_SCRUB_ENTRY)
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

    def scrub(self, keep: Callable[[Task], Task | str | None]) -> list[str]:
        held: list[str] = []
        for entry_id, fields in self._redis.xrange(self._stream):
            task = self._decode(entry_id, fields)
            kept = keep(task)
            if kept is task:
                continue
            if kept == "wait":
                held.append(task.id)
                continue
            again = kept.model_dump_json() if isinstance(kept, Task) else ""
            args = [self.GROUP, entry_id, again]
            if not self._scrub_entry(keys=[self._stream], args=args):
                held.append(task.id)  # a worker holds it: the forget waits for it
        for member in self._redis.zrange(self._delayed, 0, -1, withscores=True):
            raw, due = member
            task = Task.model_validate_json(raw)
            kept = keep(task)
            if kept is task:
                continue
            if kept == "wait":
                held.append(task.id)
            elif self._redis.zrem(self._delayed, raw) and isinstance(kept, Task):
                self._redis.zadd(self._delayed, {kept.model_dump_json(): due})
        for raw in self._redis.hvals(self._dead):
            dead = DeadTask.model_validate_json(raw)
            kept = keep(dead.task)
            if kept is dead.task or kept == "wait":
                continue  # a dead letter waits for nobody: it is kept until replayed
            if kept is None:
                self._redis.hdel(self._dead, dead.task.id)
            else:
                assert isinstance(kept, Task)
                rewritten = dead.model_copy(update={"task": kept})
                self._redis.hset(self._dead, dead.task.id, rewritten.model_dump_json())
        return held

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
