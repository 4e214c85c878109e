"""``cubemem worker`` and ``cubemem scheduler status|retry``: the background task queue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cubemem.cli.options import CubePath, open_cube
from cubemem.cli.output import console, warm_up
from cubemem.cli.output import run as _run
from cubemem.cube import MemCube

scheduler_app = typer.Typer(help="The cube's background task queue.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``worker`` and the ``scheduler`` group to ``app``."""
    app.command()(worker)
    app.add_typer(scheduler_app, name="scheduler")


QueueUrl = Annotated[
    str | None,
    typer.Option(
        "--queue", envvar="CUBEMEM_QUEUE_URL", help="'sqlite' (default) or redis://host:port/db."
    ),
]


def _open_with_queue(cube: Path, queue: str | None, workers: int | None = None) -> MemCube:
    from cubemem.settings import Settings

    overrides: dict[str, Any] = {}
    if queue:
        overrides["queue_url"] = queue
    if workers is not None:
        overrides["workers"] = workers
    return open_cube(cube, Settings(**overrides))


def worker(
    cube: CubePath = Path("memory"),
    queue: QueueUrl = None,
    threads: Annotated[int, typer.Option(help="Worker threads in this process.")] = 1,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            envvar="CUBEMEM_DATA",
            help="Work for every cube of this MemoryOS root (what `cubemem serve` queues).",
        ),
    ] = None,
) -> None:
    """Run background workers for a cube (or a whole MemoryOS with --data) until interrupted."""
    import signal
    import threading

    from cubemem.os import MemoryOS
    from cubemem.settings import Settings

    handle: Any
    if data is not None:
        overrides: dict[str, Any] = {"workers": threads}
        if queue:
            overrides["queue_url"] = queue
        handle = _run(lambda: MemoryOS(data, settings=Settings(**overrides)))
        name = f"MemoryOS {data}"
    else:
        handle = _open_with_queue(cube, queue, workers=threads)
        name = handle.name
    warm_up(
        f"cubemem worker ({name})", handle.warm if data is not None else handle.maintenance.warm
    )
    scheduler = handle.scheduler
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    console.print(f"working on {name} from {scheduler.queue.url} with {threads} thread(s)")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        handle.close()


@scheduler_app.command("status")
def scheduler_status(cube: CubePath = Path("memory"), queue: QueueUrl = None) -> None:
    """Queue depth, in-flight and failed tasks (with reasons), as JSON."""
    handle = _open_with_queue(cube, queue, workers=0)
    try:
        console.print_json(handle.scheduler.status().model_dump_json())
    finally:
        handle.close()


@scheduler_app.command("retry")
def scheduler_retry(
    cube: CubePath = Path("memory"),
    queue: QueueUrl = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Task id to replay (default: all).")
    ] = None,
) -> None:
    """Put dead-lettered tasks back on the queue."""
    handle = _open_with_queue(cube, queue, workers=0)
    try:
        count = handle.scheduler.retry_failed(task)
        console.print(f"replayed {count} task(s)")
    finally:
        handle.close()
