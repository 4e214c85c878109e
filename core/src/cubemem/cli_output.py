"""How every ``cubemem`` command talks: the consoles, and errors as one red line (exit 2)."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console

from cubemem.errors import CubememError

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
