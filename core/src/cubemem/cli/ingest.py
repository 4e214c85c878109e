"""``cubemem ingest``: conversation turns from a file, one memory per turn, idempotently."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cubemem.cli.options import CubePath, open_cube
from cubemem.cli.output import console, progress
from cubemem.cli.output import run as _run
from cubemem.cube import MemCube
from cubemem.ingest_file import ingest_plan
from cubemem.model import MemoryItem, Status


def register(app: typer.Typer) -> None:
    app.command()(ingest)


def ingest(
    file: Annotated[Path, typer.Argument(help="JSON, JSONL or NDJSON file of messages.")],
    cube: CubePath = Path("memory"),
    session: Annotated[
        str | None, typer.Option(help="Session id for messages without one.")
    ] = None,
    timestamp: Annotated[
        str | None, typer.Option(help="ISO time for messages without one.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Scope: user id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Ingest conversation turns, one memory per turn — idempotently.

    JSON: a list of messages, or {"sessions": [{"session", "timestamp", "messages"}]}.
    JSONL/NDJSON: one message per line; a "session" key groups lines. A message has "speaker"
    (or "role"), "text" (or "content"), and optionally "id" and "timestamp".

    The whole file is checked before anything is written (an error names its line). A message
    whose id is already stored in its session is skipped, or, if its text changed, stored as
    a new version of that memory; re-running an ingest adds nothing. Messages without an id
    are added every time.
    """
    sessions = _run(lambda: ingest_plan(file, session, timestamp))
    total = sum(len(s["messages"]) for s in sessions)
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    with open_cube(cube) as mc, progress(stderr=as_json) as bar:
        task = bar.add_task("ingesting", total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)

        for s in sessions:
            done = _run(lambda s=s: _ingest_session(mc, s, user, advance))
            for key, count in done.items():
                counts[key] += count
    summary = {"cube": mc.name, "messages": total, "sessions": len(sessions), **counts}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(
            f"{total} messages in {len(sessions)} session(s) into {mc.name}: "
            f"{counts['added']} added, {counts['updated']} updated, "
            f"{counts['unchanged']} already there"
        )


def _ingest_session(
    mc: MemCube, s: dict[str, Any], user: str | None, advance: Callable[[int], None]
) -> dict[str, int]:
    """Add the session's new messages, update changed ones, skip the rest (by message id)."""
    stored: dict[str, MemoryItem] = {}
    if any(m.get("id") for m in s["messages"]):
        every = {"status": list(Status), "include_expired": True}
        for item in mc.iter({**every, "session": s["session"]} if s["session"] else every):
            if (
                item.provenance.source == "message"
                and item.scope.session == s["session"]
                and item.scope.user == user
            ):
                for source in item.provenance.source_ids:
                    stored.setdefault(source, item)
    new, counts = [], {"added": 0, "updated": 0, "unchanged": 0}
    redactor = mc.maintenance.context.governance.redactor()  # stored text is redacted text
    for message in s["messages"]:
        current = stored.get(message["id"]) if message.get("id") else None
        text = redactor.text(message["text"]) if redactor is not None else message["text"]
        if current is None:
            new.append(message)
        elif current.content == text and current.status is Status.ACTIVE:
            counts["unchanged"] += 1
            advance(1)
        else:
            if current.status is not Status.ACTIVE:
                mc.restore(current.id)
            if current.content != text:
                mc.update(current.id, message["text"])
            counts["updated"] += 1
            advance(1)
    if new:
        mc.add_messages(
            new,
            session=s["session"],
            timestamp=s["timestamp"],
            scope={"user": user},
            progress=advance,
        )
        counts["added"] = len(new)
    return counts
