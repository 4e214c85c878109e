"""How every ``cubemem`` command talks: the consoles, and errors as one red line (exit 2)."""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cubemem.errors import CubememError, InvalidInputError

console = Console()
err_console = Console(stderr=True)


def emit(value: Any, as_json: bool, human: str | None = None) -> None:
    """``value`` as one line of JSON on stdout (``--json``: nothing else is printed), else
    ``human`` or, without one, ``value`` as indented, highlighted JSON."""
    if as_json:
        typer.echo(json.dumps(value, default=str, ensure_ascii=False))
    elif human is not None:
        console.print(human, highlight=False, soft_wrap=True)
    else:
        console.print_json(json.dumps(value, default=str, ensure_ascii=False))


def warm_up(what: str, warm: Any, *, fatal: bool = True) -> Any:
    """``warm()`` (a ``MemoryOS.warm`` or a cube's ``maintenance.warm``) before serving, with
    a line on stderr before and after (stdout may be a protocol: MCP over stdio). A failure
    is printed; ``fatal`` exits 2, else it is raised (a server warming in a thread)."""
    import time

    started = time.perf_counter()
    err_console.print(f"{what}: loading the embedder and search indexes ...", highlight=False)
    try:
        done = warm() or {}
    except Exception as exc:
        err_console.print(
            f"[bold red]{what}: warm-up failed:[/] {exc}", soft_wrap=True, highlight=False
        )
        if fatal and isinstance(exc, CubememError):
            raise typer.Exit(2) from None
        raise
    for name, why in done.get("cold", {}).items():
        err_console.print(f"[yellow]not warmed:[/] cube {name!r}: {why}", highlight=False)
    err_console.print(f"{what}: ready in {time.perf_counter() - started:.1f} s", highlight=False)
    return done


def fail(message: str) -> NoReturn:
    """Print ``message`` as an error and exit 2."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def run(fn: Any) -> Any:
    """``fn()``, showing cubemem's errors as one red line and exiting 2, never a traceback."""
    try:
        return fn()
    except CubememError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def quiet_model_loading() -> None:
    """Offline, and no download/loading progress bars (read by huggingface_hub and
    transformers when they are imported — which commands that do not embed never do)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def int_list(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(f"{option} takes comma-separated integers, got {text!r}") from None


def progress(*, stderr: bool = False) -> Progress:
    """A bar with count, rate and ETA (on stderr when stdout carries JSON)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console if stderr else console,
    )


class _RateColumn(TextColumn):
    """Items per second, once there is a rate to show."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="cyan")
