"""What the ``cubemem`` commands share: the option types and opening the cube they name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer

from cubemem.cli.output import fail as _fail
from cubemem.cli.output import run as _run
from cubemem.cube import MemCube
from cubemem.manifest import MANIFEST_NAME

CubePath = Annotated[
    Path,
    typer.Option("--cube", "-c", envvar="CUBEMEM_CUBE", help="Folder of the cube."),
]


UserOption = Annotated[str | None, typer.Option(help="Only this user's memories.")]
AgentOption = Annotated[str | None, typer.Option(help="Only this agent's memories.")]
SessionOption = Annotated[str | None, typer.Option(help="Only this session's memories.")]
TagOption = Annotated[list[str] | None, typer.Option(help="A tag (repeatable; all must match).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (and nothing else).")]


def parse_filters(
    user: str | None, agent: str | None, session: str | None, tags: list[str] | None
) -> dict[str, Any]:
    given = {"user": user, "agent": agent, "session": session, "tags": tags}
    return {key: value for key, value in given.items() if value}


def open_cube(path: Path, settings: Any = None, *, index: bool = True) -> MemCube:
    """Open the cube at ``path``, or exit with advice in the CLI's terms. ``index=False``
    (commands that do not search) leaves the vector index closed: Chroma is never loaded."""
    if not index:
        from cubemem.settings import Settings

        settings = Settings(open_index=False)
    if not (path / MANIFEST_NAME).is_file():
        where = "it does not exist" if not path.exists() else f"no {MANIFEST_NAME} in it"
        _fail(
            f"{path} is not a cube ({where}); create one with `cubemem init {path}`, or point "
            "at one with --cube/-c (or CUBEMEM_CUBE)"
        )
    return cast(MemCube, _run(lambda: MemCube.open(path, settings=settings)))
