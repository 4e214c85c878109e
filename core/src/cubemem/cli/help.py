"""Help in the shell's words: types shown as TEXT, INTEGER, PATH (typer 0.2x shows Python's
``<str>``, ``<list[str]>``) and flags shown bare (typer shows ``<bool>``).

Typer renders a parameter's type with ``display_type``; ``plain_types`` replaces it for the
``cubemem`` command (``tests/core/test_cli.py`` checks every help page, so a typer release that
renders types another way fails there, not in front of a user)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, get_args, get_origin

import typer.core

_WORDS = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH", datetime.datetime: "DATETIME"}


def plain_types() -> None:
    """Render every parameter's type in the shell's words."""
    typer.core._TyperParameter.display_type = _label  # type: ignore[method-assign,assignment]


def _label(param: Any, ctx: Any = None) -> str:
    if getattr(param, "is_flag", False):
        return ""
    described = param.type_descriptor
    if described.is_choice:
        return "|".join(str(c) for c in described.choices or ())
    annotation = described.annotation
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    return _WORDS.get(annotation, "TEXT")
