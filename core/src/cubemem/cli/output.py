"""How every ``cubemem`` command talks: the consoles, and errors as one red line (exit 2)."""

from __future__ import annotations

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
