"""MemScheduler: durable background work for one cube — write, consolidate, expire, promote.

``MemCube.add(..., wait=False)`` validates the input, assigns ids, makes one ``add`` task
durable and returns the ids. Worker threads (or ``cubemem worker`` processes) claim tasks in
batches, embed all their texts in one model call, write the rows and the index, and acknowledge.
Every handler is idempotent, so at-least-once delivery has an exactly-once effect: an ``add``
whose ids are already stored is skipped, a consolidation of an already merged memory does
nothing, an expiry sweep only changes rows still at the version it read, a promotion rebuilds
only a hot set that changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from cubemem.model import MemoryItem
from cubemem.scheduler import consolidate as consolidation
from cubemem.scheduler.queue import (
    DeadTask,
    QueueStats,
    Task,
    TaskKind,
    TaskQueue,
    consumer_name,
)

if TYPE_CHECKING:
    from cubemem.cube import MemCube

log = logging.getLogger(__name__)

Promoter = Callable[[str | None, str | None], int]
"""``(agent, session) -> blocks built``: turns a hot set into activation memory."""


class SchedulerStatus(BaseModel):
    queue: str
    ready: int
    in_flight: int
    done: int
    failed: list[DeadTask]
    workers: int
    items_per_s: float
    tasks_per_s: float


@dataclass
class _Write:
    tasks: list[Task]
    items: list[MemoryItem]
    embeddings: dict
    future: Future[None]


def _done(fn: Callable[..., None], *args: object) -> Future[None]:
    """Run ``fn`` now; its outcome as a completed future."""
    future: Future[None] = Future()
    try:
        fn(*args)
    except Exception as exc:
        future.set_exception(exc)
    else:
        future.set_result(None)
    return future


class Scheduler:
    """Runs a cube's tasks on ``workers`` threads; ``start``/``stop``/``wait``/``status``."""

    def __init__(self, cube: MemCube, queue: TaskQueue, *, workers: int | None = None) -> None:
        settings = cube._settings
        self.cube = cube
        self.queue = queue
        self.workers = settings.workers if workers is None else workers
        self.batch = settings.task_batch
        self.lease_s = settings.task_lease_s
        self.max_attempts = settings.max_attempts
        self.backoff_s = settings.retry_backoff_s
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._finished: deque[tuple[float, int, int]] = deque(maxlen=4096)
        self._last_sweep = time.monotonic()
        self._promoters: list[Promoter] = []

    # -- running --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> Scheduler:
        """Start the worker threads (idempotent)."""
        if self.running or self.workers == 0:
            return self
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._work, name=f"cubemem-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the batches in hand and stop; unclaimed tasks stay queued (durable)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def run_forever(self) -> None:
        """Work in the calling thread until ``stop`` (for ``cubemem worker``)."""
        self._stop.clear()
        self._work()

    def submit(self, tasks: Sequence[Task]) -> None:
        self.queue.put(tasks)

    def wait(self, ids: Sequence[str] | None = None, timeout: float | None = None) -> bool:
        """Until these memory ids are stored (or, without ids, the queue is empty).

        Returns False on timeout. Without running workers (here or elsewhere) it can only
        time out.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = None if ids is None else list(dict.fromkeys(ids))
        while True:
            if wanted is not None:
                present = {i.id for i in self.cube._store.get(wanted)}
                wanted = [i for i in wanted if i not in present]
                if not wanted:
                    return True
            else:
                stats = self.queue.stats()
                if stats.ready == 0 and stats.in_flight == 0:
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def status(self) -> SchedulerStatus:
        stats: QueueStats = self.queue.stats()
        now = time.monotonic()
        recent = [(t, n, items) for t, n, items in self._finished if now - t <= 60]
        span = max(1e-9, now - recent[0][0]) if len(recent) > 1 else 0.0
        return SchedulerStatus(
            queue=self.queue.url,
            ready=stats.ready,
            in_flight=stats.in_flight,
            done=stats.done,
            failed=self.queue.dead_letters(),
            workers=sum(t.is_alive() for t in self._threads),
            items_per_s=sum(i for _, _, i in recent) / span if span else 0.0,
            tasks_per_s=sum(n for _, n, _ in recent) / span if span else 0.0,
        )

    def promote(self, agent: str | None = None, session: str | None = None) -> None:
        """Queue the promotion of an agent/session's hot set (see ``on_promote``)."""
        self.start()
        self.submit([Task(kind=TaskKind.PROMOTE, payload={"agent": agent, "session": session})])

    def on_promote(self, promoter: Promoter) -> Callable[[], None]:
        """Run ``promoter(agent, session)`` for each promotion task this process's workers take;
        returns an unsubscribe function. Activation memory registers here to build KV blocks in
        the background. A promotion taken where nothing is registered (another process) does
        nothing: the block is then built on first use."""
        self._promoters.append(promoter)

        def unsubscribe() -> None:
            if promoter in self._promoters:
                self._promoters.remove(promoter)

        return unsubscribe

    def retry_failed(self, task_ids: Sequence[str] | None = None) -> int:
        """Put dead-lettered tasks back on the queue."""
        return self.queue.replay(task_ids)

    # -- the worker loop ------------------------------------------------------------------
    def _work(self) -> None:
        """Claim, embed, write, acknowledge — with the write of one batch overlapping the
        embedding of the next (a dedicated writer thread), which is what lets background
        ingestion keep up with inline batched ingestion."""
        consumer = consumer_name()
        writer = ThreadPoolExecutor(1, thread_name_prefix="cubemem-writer")
        writing: _Write | None = None
        try:
            while not self._stop.is_set():
                try:
                    self._maybe_sweep()
                    block = 0.0 if writing is not None else 0.2
                    tasks = self.queue.claim(consumer, self.batch, self.lease_s, block_s=block)
                except Exception:
                    log.exception("claiming tasks failed; retrying")
                    self._stop.wait(1.0)
                    continue
                try:
                    adds = [t for t in tasks if t.kind is TaskKind.ADD]
                    prepared = self._prepare(adds) if adds else None
                    if writing is not None:
                        pending, writing = writing, None
                        self._finish(pending)
                    if prepared is not None:
                        writing = _Write(adds, *prepared, writer.submit(self._write, *prepared))
                    for task in tasks:
                        if task.kind is not TaskKind.ADD:
                            self._one(task)
                except Exception:
                    # The queue failed under us (an ack, a retry): the worker lives on, and the
                    # unacknowledged tasks come back when their leases end (handlers are
                    # idempotent, so what was already written is skipped then).
                    log.exception("a worker step failed; its tasks return when their lease ends")
                    self._stop.wait(1.0)
            if writing is not None:
                self._finish(writing)
        except Exception:
            log.exception("finishing the last batch failed; its tasks return when their lease ends")
        finally:
            writer.shutdown(wait=True)

    def _prepare(self, adds: list[Task]) -> tuple[list[MemoryItem], dict] | None:
        """Parse and embed a batch; a batch that fails here is retried task by task."""
        try:
            items = [MemoryItem.model_validate(i) for t in adds for i in t.payload["items"]]
            present = {i.id for i in self.cube._store.get([i.id for i in items])}
            new = list({i.id: i for i in items if i.id not in present}.values())
            return new, (self.cube._embed(new) if new else {})
        except Exception:
            log.warning("a batch of %d add tasks failed; retrying them one by one", len(adds))
            for task in adds:
                self._one(task)
            return None

    def _write(self, items: list[MemoryItem], embeddings: dict) -> None:
        if items:
            self.cube._write_new(items, embeddings=embeddings)
            self.cube._after_write(items)

    def _finish(self, writing: _Write) -> None:
        try:
            writing.future.result()
        except Exception:
            log.warning("writing a batch failed; retrying its tasks one by one", exc_info=True)
            for task in writing.tasks:
                self._one(task)
        else:
            self.queue.ack(writing.tasks)
            self._finished.append((time.monotonic(), len(writing.tasks), len(writing.items)))

    def process(self, tasks: Sequence[Task]) -> None:
        """Handle claimed tasks in the calling thread (tests, tools): ``add`` tasks together."""
        adds = [t for t in tasks if t.kind is TaskKind.ADD]
        if adds:
            prepared = self._prepare(adds)
            if prepared is not None:
                self._finish(_Write(adds, *prepared, _done(self._write, *prepared)))
        for task in tasks:
            if task.kind is not TaskKind.ADD:
                self._one(task)

    def _one(self, task: Task) -> None:
        try:
            items = self.handle(task)
        except Exception as exc:  # a handler's failure is retried, then dead-lettered
            error = f"{type(exc).__name__}: {exc}"
            if task.attempts + 1 >= self.max_attempts:
                log.error("task %s (%s) failed for good: %s", task.id, task.kind, error)
                self.queue.bury(task, error)
            else:
                self.queue.retry(task, error, self.backoff_s * 2**task.attempts)
        else:
            self.queue.ack([task])
            self._finished.append((time.monotonic(), 1, items))

    def _maybe_sweep(self) -> None:
        interval = self.cube._settings.lifecycle_interval_s
        if time.monotonic() - self._last_sweep >= interval:
            self._last_sweep = time.monotonic()
            self.queue.put([Task(kind=TaskKind.EXPIRE)])

    # -- handlers (idempotent) ------------------------------------------------------------
    def handle(self, task: Task) -> int:
        if task.kind is TaskKind.ADD:
            return self.handle_add([MemoryItem.model_validate(i) for i in task.payload["items"]])
        if task.kind is TaskKind.CONSOLIDATE:
            return len(self.handle_consolidate(task.payload["ids"]))
        if task.kind is TaskKind.EXPIRE:
            report = self.cube.lifecycle()
            return len(report.expired) + len(report.cold)
        if task.kind is TaskKind.EXTRACT:
            return self.handle_extract(task.payload["ids"])
        if task.kind is TaskKind.PROMOTE:
            agent, session = task.payload.get("agent"), task.payload.get("session")
            return sum(promote(agent, session) for promote in list(self._promoters))
        raise ValueError(f"unknown task kind {task.kind!r}")

    def handle_add(self, items: Sequence[MemoryItem]) -> int:
        """Store items not stored yet (a redelivered task finds them and skips them)."""
        present = {i.id for i in self.cube._store.get([i.id for i in items])}
        new = list({i.id: i for i in items if i.id not in present}.values())
        if new:
            self.cube._write_new(new)
            self.cube._after_write(new)
        return len(new)

    def handle_consolidate(self, ids: Sequence[str]) -> list[consolidation.Merge]:
        return self.cube.consolidate(ids)

    def handle_extract(self, ids: Sequence[str]) -> int:
        return self.cube._extract(ids)
