"""MemScheduler: durable background work for one cube or many — write, follow up, expire, promote.

``MemCube.add(..., wait=False)`` validates the input, assigns ids, makes one ``add`` task
durable and returns the ids. Worker threads (or ``cubemem worker`` processes) claim tasks in
batches, embed all their texts in one model call per cube, write the rows and the index, and
acknowledge — queuing in the same step the follow-up tasks the write calls for (extraction of
raw turns, consolidation of facts; ``cubemem.ops.followup``), each then retried and
dead-lettered on its own. Every handler is idempotent, so at-least-once delivery has an
exactly-once effect: an ``add`` whose ids are already stored is skipped, an extraction stores
facts under ids derived from their turns, a consolidation of an already merged memory does
nothing, an expiry sweep only changes rows still at the version it read, a promotion rebuilds
only a hot set that changed.

A task names its cube (``payload["cube"]``); the scheduler asks its ``Cubes`` for that cube's
``Context``, so one scheduler and one set of workers serve every cube of a MemoryOS.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from cubemem.errors import BackpressureError
from cubemem.model import MemoryItem
from cubemem.ops import followup, inputs, lifecycle, summarize
from cubemem.ops.context import Context
from cubemem.ops.write import insert
from cubemem.scheduler.batches import Batch, Write, done, subscribe
from cubemem.scheduler.cubes import Cubes, OneCube, SchedulerStatus, add_task, extraction_usage
from cubemem.scheduler.queue import QueueStats, Task, TaskKind, TaskQueue, consumer_name
from cubemem.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Cubes", "OneCube", "Scheduler", "SchedulerStatus", "add_task"]

Promoter = Callable[[str | None, str | None], int]
Sweeper = Callable[[], int]
"""``(agent, session) -> blocks built``: turns a hot set into activation memory."""


class Scheduler:
    """Runs tasks on ``workers`` threads: ``start``, ``stop``, ``wait``, ``status``, retries."""

    def __init__(
        self,
        cubes: Cubes,
        queue: TaskQueue,
        settings: Settings,
        *,
        workers: int | None = None,
    ) -> None:
        self.cubes = cubes
        self.queue = queue
        self.settings = settings
        self._depth, self._depth_at = 0, float("-inf")
        self.workers = settings.workers if workers is None else workers
        self.batch = settings.task_batch
        self.lease_s = settings.task_lease_s
        self.max_attempts = settings.max_attempts
        self.backoff_s = settings.retry_backoff_s
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._finished: deque[tuple[float, int, int]] = deque(maxlen=4096)
        self._last_sweep = time.monotonic()
        self._promoters: list[tuple[str | None, Promoter]] = []
        self._sweepers: list[tuple[str | None, Sweeper]] = []
        self._exiting = False

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
        _running.add(self)
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the batches in hand and stop; unclaimed tasks stay queued (durable)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        _running.discard(self)

    def drain_and_stop(self, drain_s: float) -> None:
        """At interpreter exit: let the workers empty the queue for up to ``drain_s`` seconds,
        then stop them. Nothing new can be imported once the interpreter is shutting down, so
        the queue is drained only when every cube's embedder is already loaded; otherwise (and
        on the first failure) the workers stop and the tasks wait, durable, for the next run."""
        self._exiting = True
        warm = all(getattr(ctx.embedder, "loaded", True) for ctx in self.cubes.contexts())
        deadline = time.monotonic() + drain_s
        try:
            while warm and self.running and not self._stop.is_set():
                stats = self.queue.stats()
                if (stats.ready == 0 and stats.in_flight == 0) or time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
        except Exception as exc:  # the process is exiting: stop regardless
            log.warning("draining the queue at exit failed: %s", exc)
        self.stop()

    def run_forever(self) -> None:
        """Work in the calling thread until ``stop`` (for ``cubemem worker``)."""
        self._stop.clear()
        self._work()

    def submit(self, tasks: Sequence[Task]) -> None:
        """Queue ``tasks``; ``BackpressureError`` (nothing queued) while the queue holds
        ``Settings.max_queue_depth`` tasks not yet done (read at most every 0.2 s)."""
        now = time.monotonic()
        if now - self._depth_at > 0.2:
            stats = self.queue.stats()
            self._depth, self._depth_at = stats.ready + stats.in_flight, now
        if self._depth + len(tasks) > self.settings.max_queue_depth:
            raise BackpressureError(
                f"the background queue holds {self._depth} writes not yet stored (the limit is "
                f"max_queue_depth={self.settings.max_queue_depth}); nothing was queued. Retry "
                "later, write with wait=True, or run more workers"
            )
        self.queue.put(tasks)
        self._depth += len(tasks)

    def wait(
        self,
        ids: Sequence[str] | None = None,
        timeout: float | None = None,
        *,
        cube: str | None = None,
    ) -> bool:
        """Until these memory ids are stored in ``cube`` (default: any cube this scheduler has
        open), or, without ids, until the queue is empty, follow-up tasks included. Returns
        False on timeout. Without running workers (here or elsewhere) it can only time out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = None if ids is None else list(dict.fromkeys(inputs.memory_ids(ids)))
        if timeout is not None:
            timeout = inputs.non_negative(timeout, "timeout")
        contexts = [self.cubes.context(cube)] if cube is not None else self.cubes.contexts()
        while True:
            if wanted is not None:
                present = {i.id for ctx in contexts for i in ctx.store.get(wanted)}
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
            extraction=extraction_usage(self.cubes.contexts()),
        )

    def promote(
        self, agent: str | None = None, session: str | None = None, *, cube: str | None = None
    ) -> None:
        """Queue the promotion of an agent/session's hot set (see ``on_promote``)."""
        self.start()
        payload = {"agent": agent, "session": session, "cube": cube}
        self.submit([Task(kind=TaskKind.PROMOTE, payload=payload)])

    def on_promote(self, promoter: Promoter, *, cube: str | None = None) -> Callable[[], None]:
        """Run ``promoter(agent, session)`` for each promotion task (of ``cube``, if given) this
        process's workers take; returns an unsubscribe function. Activation memory registers
        here to build KV blocks in the background. A promotion taken where nothing is
        registered (another process) does nothing: the block is then built on first use."""
        return subscribe(self._promoters, (cube, promoter))

    def on_sweep(self, sweeper: Sweeper, *, cube: str | None = None) -> Callable[[], None]:
        """Run ``sweeper()`` after each lifecycle sweep (every ``lifecycle_interval_s``) of
        ``cube`` (or of every cube) that this process's workers take; it returns how many
        memories it changed. Parametric memory registers here to move memories between kinds
        (``ParametricMemory.schedule``). A sweeper's error is logged; the sweep still counts."""
        return subscribe(self._sweepers, (cube, sweeper))

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
        writing: Write | None = None
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
                        writing = Write(adds, prepared, writer.submit(self._write, prepared))
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

    def _prepare(self, adds: list[Task]) -> list[Batch] | None:
        """Parse and embed a batch, per cube; a batch that fails here is retried task by task."""
        try:
            by_cube: dict[str | None, list[MemoryItem]] = {}
            for task in adds:
                items = [MemoryItem.model_validate(i) for i in task.payload["items"]]
                by_cube.setdefault(task.payload.get("cube"), []).extend(items)
            batches = []
            for cube_id, items in by_cube.items():
                ctx = self.cubes.context(cube_id)
                unique = list({i.id: i for i in items}.values())
                present = {i.id for i in ctx.store.get([i.id for i in unique])}
                new = [i for i in unique if i.id not in present]
                batches.append(Batch(ctx, unique, new, ctx.embed(new)))
            return batches
        except Exception:
            if self._exiting:
                log.info(
                    "interpreter exiting: %d add tasks left queued for the next run", len(adds)
                )
                self._stop.set()
                return None
            log.warning("a batch of %d add tasks failed; retrying them one by one", len(adds))
            for task in adds:
                self._one(task)
            return None

    @staticmethod
    def _write(batches: list[Batch]) -> None:
        for batch in batches:
            insert(batch.ctx, batch.new, embeddings=batch.embeddings)

    def _finish(self, writing: Write) -> None:
        try:
            writing.future.result()
        except Exception:
            log.warning("writing a batch failed; retrying its tasks one by one", exc_info=True)
            for task in writing.tasks:
                self._one(task)
        else:
            then = [t for b in writing.batches for t in self._follow_ups(b.ctx, b.items)]
            self.queue.ack(writing.tasks, then)
            stored = sum(len(b.new) for b in writing.batches)
            self._finished.append((time.monotonic(), len(writing.tasks), stored))

    def process(self, tasks: Sequence[Task]) -> None:
        """Handle claimed tasks in the calling thread (tests, tools): ``add`` tasks together."""
        adds = [t for t in tasks if t.kind is TaskKind.ADD]
        if adds:
            prepared = self._prepare(adds)
            if prepared is not None:
                self._finish(Write(adds, prepared, done(self._write, prepared)))
        for task in tasks:
            if task.kind is not TaskKind.ADD:
                self._one(task)

    def _one(self, task: Task) -> None:
        try:
            done, then = self.handle(task)
        except Exception as exc:  # a handler's failure is retried, then dead-lettered
            error = f"{type(exc).__name__}: {exc}"
            if self._exiting:  # the interpreter is going down: leave it for the next run
                log.info("task %s left queued at exit: %s", task.id, error)
                self._stop.set()
                return
            if task.attempts + 1 >= self.max_attempts:
                log.error("task %s (%s) failed for good: %s", task.id, task.kind, error)
                self.queue.bury(task, error)
            else:
                self.queue.retry(task, error, self.backoff_s * 2**task.attempts)
        else:
            self.queue.ack([task], then)
            self._finished.append((time.monotonic(), 1, done))

    def _maybe_sweep(self) -> None:
        interval = self.settings.lifecycle_interval_s
        if time.monotonic() - self._last_sweep >= interval:
            self._last_sweep = time.monotonic()
            self.queue.put(
                [
                    Task(kind=TaskKind.EXPIRE, payload={"cube": c.cube_id})
                    for c in self.cubes.contexts()
                ]
            )

    @staticmethod
    def _follow_ups(ctx: Context, items: Sequence[MemoryItem]) -> list[Task]:
        return [
            Task(kind=TaskKind(step), payload={"cube": ctx.cube_id, "ids": ids})
            for step, ids in followup.pending(ctx, items)
        ]

    # -- handlers (idempotent) ------------------------------------------------------------
    def handle(self, task: Task) -> tuple[int, list[Task]]:
        """Run one task: (memories it stored or changed, the follow-up tasks it calls for)."""
        if task.kind is TaskKind.PROMOTE:
            agent, session = task.payload.get("agent"), task.payload.get("session")
            cube = task.payload.get("cube")
            built = sum(
                promote(agent, session)
                for for_cube, promote in list(self._promoters)
                if for_cube is None or cube is None or for_cube == cube
            )
            return built, []
        ctx = self.cubes.context(task.payload.get("cube"))
        if task.kind is TaskKind.ADD:
            items = [MemoryItem.model_validate(i) for i in task.payload["items"]]
            stored = insert(ctx, items)
            return len(stored), self._follow_ups(ctx, items)
        if task.kind is TaskKind.EXPIRE:
            report = lifecycle.sweep(ctx)
            forgotten = sum(e.count for e in report.retention)
            changed = len(report.expired) + len(report.cold) + forgotten + len(summarize.quiet(ctx))
            for for_cube, sweeper in list(self._sweepers):
                if for_cube is None or for_cube == ctx.cube_id:
                    try:
                        changed += sweeper()
                    except Exception:
                        log.warning("a sweeper of cube %s failed", ctx.cube_id, exc_info=True)
            return changed, []
        if task.kind in (TaskKind.EXTRACT, TaskKind.CONSOLIDATE, TaskKind.SUMMARIZE):
            step: followup.Step = task.kind.value  # type: ignore[assignment]
            created = followup.run(ctx, step, task.payload["ids"])
            return len(created), self._follow_ups(ctx, created)
        raise ValueError(f"unknown task kind {task.kind!r}")


_running: weakref.WeakSet[Scheduler] = weakref.WeakSet()


def _stop_running_schedulers() -> None:
    """Worker threads are daemons: left running into interpreter shutdown, one caught inside
    torch or the vector index aborts the process (``terminate called without an active
    exception``). At exit every running scheduler drains for ``Settings.exit_drain_s`` and
    stops; a task it did not reach stays queued and durable."""
    for scheduler in list(_running):
        scheduler.drain_and_stop(scheduler.settings.exit_drain_s)


# Registered where concurrent.futures registers its own exit hook, and so run before it (these
# hooks run last-registered first): the workers' writer pool still takes work while they drain.
_register = getattr(threading, "_register_atexit", atexit.register)
_register(_stop_running_schedulers)
