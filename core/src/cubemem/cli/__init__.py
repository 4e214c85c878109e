"""The ``cubemem`` command: manage a cube from the shell, and ``cubemem demo``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cubemem.cli import worker as cli_worker
from cubemem.cli.bench import bench_app
from cubemem.cli.options import (
    AgentOption,
    CubePath,
    JsonOption,
    SessionOption,
    TagOption,
    UserOption,
    open_cube,
    parse_filters,
)
from cubemem.cli.output import console, progress, quiet_model_loading
from cubemem.cli.output import fail as _fail
from cubemem.cli.output import run as _run
from cubemem.cube import MemCube
from cubemem.cube import reindex as reindex_cube
from cubemem.ingest_file import ingest_plan
from cubemem.manifest import MANIFEST_NAME
from cubemem.model import Filters, MemoryItem, SearchResult, Status

app = typer.Typer(
    name="cubemem",
    help="A memory operating system for LLM agents: MemCubes with provenance and hybrid search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bench_app, name="bench")
cli_worker.register(app)


@app.callback()
def _main() -> None:
    quiet_model_loading()


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder to create the cube in.")],
    name: Annotated[str | None, typer.Option(help="Cube name (default: folder name).")] = None,
    owner: Annotated[str | None, typer.Option(help="Who owns the cube.")] = None,
) -> None:
    """Create a new, empty cube."""
    if (path / MANIFEST_NAME).exists():
        _fail(f"{path} is already a cube; use it with `-c {path}` (e.g. `cubemem stats -c {path}`)")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        _fail(f"{path} exists and is not an empty folder; choose a new path for the cube")
    cube = _run(lambda: MemCube.create(path, name=name, owner=owner))
    console.print(f"created cube [bold]{cube.name}[/] at {cube.path}")
    cube.close()


@app.command()
def add(
    text: Annotated[str, typer.Argument(help="The memory text.")],
    cube: CubePath = Path("memory"),
    user: Annotated[str | None, typer.Option(help="Scope: user id.")] = None,
    agent: Annotated[str | None, typer.Option(help="Scope: agent id.")] = None,
    session: Annotated[str | None, typer.Option(help="Scope: session id.")] = None,
    tag: TagOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add one memory."""
    with open_cube(cube) as mc:
        scope = {"user": user, "agent": agent, "session": session}
        item = _run(lambda: mc.add(text, scope=scope, tags=tag or []))
    typer.echo(item.model_dump_json() if as_json else item.id)


@app.command()
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
    for message in s["messages"]:
        current = stored.get(message["id"]) if message.get("id") else None
        if current is None:
            new.append(message)
        elif current.content == message["text"] and current.status is Status.ACTIVE:
            counts["unchanged"] += 1
            advance(1)
        else:
            if current.status is not Status.ACTIVE:
                mc.restore(current.id)
            if current.content != message["text"]:
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


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    cube: CubePath = Path("memory"),
    k: Annotated[int, typer.Option("--k", "-k", help="How many results.")] = 5,
    user: UserOption = None,
    agent: AgentOption = None,
    session: SessionOption = None,
    tag: TagOption = None,
    min_score: Annotated[
        float | None, typer.Option(help="Only results with relevance (0-1) at least this.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search a cube (dense + BM25, fused)."""
    filters = parse_filters(user, agent, session, tag)
    with open_cube(cube) as mc:
        hits = _run(lambda: mc.search(query, k=k, filters=filters, min_score=min_score))
    if as_json:
        typer.echo(json.dumps([h.model_dump(mode="json") for h in hits], indent=2))
    else:
        console.print(_hits_table(query, hits))


@app.command()
def show(
    id: Annotated[str, typer.Argument(help="Memory id.")],
    cube: CubePath = Path("memory"),
    history: Annotated[bool, typer.Option("--history", help="Show every version.")] = False,
) -> None:
    """Show one memory as a JSON object, or its version history as a JSON array."""
    with open_cube(cube) as mc:
        items = _run(lambda: mc.history(id) if history else [mc.get(id)])
    data = [i.model_dump(mode="json") for i in items]
    typer.echo(json.dumps(data if history else data[0], indent=2, ensure_ascii=False))


@app.command("list")
def list_(
    cube: CubePath = Path("memory"),
    user: UserOption = None,
    agent: AgentOption = None,
    session: SessionOption = None,
    tag: TagOption = None,
    status: Annotated[
        str | None, typer.Option(help="active (default), archived, deleted or quarantined.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many memories.", min=1)] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many first.", min=0)] = 0,
    as_json: JsonOption = False,
) -> None:
    """List memories in the order they were stored."""
    filters = parse_filters(user, agent, session, tag)
    if status:
        filters["status"] = [status]
    with open_cube(cube) as mc:
        items = _run(lambda: mc.list(filters, limit=limit, offset=offset))
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in items], ensure_ascii=False))
        return
    table = Table(title=f"{len(items)} memories (from {offset})", title_justify="left")
    for column, style in (("id", "dim"), ("user", "magenta"), ("tags", "green"), ("text", "")):
        table.add_column(column, style=style, overflow="fold")
    for item in items:
        table.add_row(item.id, item.scope.user or "", ",".join(item.tags), item.content)
    console.print(table)


@app.command()
def update(
    id: Annotated[str, typer.Argument(help="Memory id.")],
    text: Annotated[str, typer.Argument(help="The new text (a new version).")],
    cube: CubePath = Path("memory"),
    expected_version: Annotated[
        int | None,
        typer.Option(
            help="Refuse if the memory is no longer at this version (someone else wrote first)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a new version of a memory (the old one stays in its history)."""
    with open_cube(cube) as mc:
        item = _run(lambda: mc.update(id, text, expected_version=expected_version))
    if as_json:
        typer.echo(item.model_dump_json())
    else:
        console.print(f"{item.id} is now at version {item.version}")


@app.command()
def delete(
    id: Annotated[str, typer.Argument(help="Memory id.")],
    cube: CubePath = Path("memory"),
    purge: Annotated[
        bool, typer.Option(help="Erase it and its history for good (no restore).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a memory (soft: `cubemem show ID` still shows it; --purge erases it)."""
    with open_cube(cube) as mc:
        _run(lambda: mc.delete(id, purge=purge))
    if as_json:
        typer.echo(json.dumps({"id": id, "deleted": True, "purged": purge}))
    else:
        console.print(f"{'purged' if purge else 'deleted'} {id}")


@app.command("export")
def export_(
    archive: Annotated[Path, typer.Argument(help="Archive file to write (.zip).")],
    cube: CubePath = Path("memory"),
) -> None:
    """Export a cube into one archive."""
    with open_cube(cube) as mc:
        path = _run(lambda: mc.export(archive))
    console.print(f"exported {mc.name} to {path}")


@app.command("import")
def import_(
    archive: Annotated[Path, typer.Argument(help="Archive written by `cubemem export`.")],
    path: Annotated[Path, typer.Argument(help="Folder for the new cube.")],
) -> None:
    """Recreate a cube from an archive."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        _fail(f"{path} already exists; import into a new folder")
    if not archive.is_file():
        _fail(f"{archive} is not a file; give the .zip that `cubemem export` wrote")
    mc = _run(lambda: MemCube.import_(archive, path))
    console.print(f"imported {mc.count()} active memories into {mc.path}")
    mc.close()


@app.command()
def reindex(
    embedder: Annotated[
        str,
        typer.Option(
            help="The new embedder: a sentence-transformers model name or path, or "
            "openai:<model> (an OpenAI-compatible endpoint from OPENAI_BASE_URL/OPENAI_API_KEY)."
        ),
    ],
    cube: CubePath = Path("memory"),
) -> None:
    """Re-embed every memory with another embedder (ids, versions and provenance stay)."""
    from cubemem.embed import as_embedder

    quiet_model_loading()
    open_cube(cube).close()  # a clear error if there is no cube
    with console.status(f"re-embedding {cube} with {embedder}"):
        mc = _run(lambda: reindex_cube(cube, _run(lambda: as_embedder(embedder))))
    with mc:
        console.print(
            f"{mc.name}: {mc.count(Filters.everything())} memories now embedded by "
            f"{mc.manifest.embedder} (dimension {mc.manifest.dimension})"
        )


@app.command()
def stats(cube: CubePath = Path("memory")) -> None:
    """Counts and identity of a cube."""
    with open_cube(cube) as mc:
        typer.echo(json.dumps(mc.stats(), indent=2))


@app.command()
def demo(
    k: Annotated[int, typer.Option("--k", "-k", help="Hits shown per question.")] = 3,
) -> None:
    """Ingest a short conversation into a temporary cube and ask it questions (offline)."""
    source = resources.files("cubemem") / "data" / "demo_conversation.json"
    data = json.loads(source.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="cubemem-demo-") as tmp:
        console.print(f"[bold]cubemem demo[/]: {data['title']}")
        with console.status("loading the embedder (all-MiniLM-L6-v2, offline)"):
            mc = _run(lambda: MemCube.create(Path(tmp) / "demo", name="demo"))
        with mc, progress() as bar:
            sessions = data["sessions"]
            task = bar.add_task("ingesting", total=sum(len(s["messages"]) for s in sessions))
            for s in sessions:
                mc.add_messages(
                    s["messages"],
                    session=s["session"],
                    timestamp=s["timestamp"],
                    progress=lambda n: bar.advance(task, n),
                )
            bar.stop()
            for question in data["questions"]:
                console.print(_hits_table(question, mc.search(question, k=k)))
            console.print(f"{mc.count()} memories in a cube at {mc.path} (removed on exit)")


def _hits_table(query: str, hits: list[SearchResult]) -> Table:
    table = Table(title=f"[bold]{query}[/]", title_justify="left", show_lines=False)
    for column, style in (
        ("score", "cyan"),
        ("speaker", "magenta"),
        ("date", "green"),
        ("text", ""),
        ("provenance", "dim"),
    ):
        table.add_column(column, style=style, overflow="fold")
    for hit in hits:
        item: MemoryItem = hit.item
        when = item.provenance.occurred_at
        table.add_row(
            f"{hit.score:.4f}",
            item.provenance.speaker or "",
            f"{when:%Y-%m-%d}" if when else "",
            item.content,
            f"{item.provenance.source} {','.join(item.provenance.source_ids)} v{item.version}",
        )
    return table


def _register_shared_memory_commands() -> None:
    from cubemem.server.commands import register

    register(app)


_register_shared_memory_commands()
