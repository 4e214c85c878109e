"""The ``cubemem`` command: manage a cube from the shell, and ``cubemem demo``."""

from __future__ import annotations

import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cubemem.cli import governance as cli_governance
from cubemem.cli import ingest as cli_ingest
from cubemem.cli import worker as cli_worker
from cubemem.cli.bench import bench_app
from cubemem.cli.help import plain_types
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
from cubemem.cli.output import console, emit, progress, quiet_model_loading
from cubemem.cli.output import fail as _fail
from cubemem.cli.output import run as _run
from cubemem.cube import MemCube
from cubemem.cube import reindex as reindex_cube
from cubemem.manifest import MANIFEST_NAME
from cubemem.model import Filters, MemoryItem, SearchResult

app = typer.Typer(
    name="cubemem",
    help="A memory operating system for LLM agents: MemCubes with provenance and hybrid search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bench_app, name="bench")
cli_ingest.register(app)
cli_governance.register(app)
cli_worker.register(app)


@app.callback()
def _main() -> None:
    quiet_model_loading()


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder to create the cube in.")],
    name: Annotated[str | None, typer.Option(help="Cube name (default: folder name).")] = None,
    owner: Annotated[str | None, typer.Option(help="Who owns the cube.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a new, empty cube."""
    if (path / MANIFEST_NAME).exists():
        _fail(f"{path} is already a cube; use it with `-c {path}` (e.g. `cubemem stats -c {path}`)")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        _fail(f"{path} exists and is not an empty folder; choose a new path for the cube")
    cube = _run(lambda: MemCube.create(path, name=name, owner=owner))
    cube.close()
    made = {"name": cube.name, "path": str(cube.path)}
    emit(made, as_json, f"created cube [bold]{cube.name}[/] at {cube.path}")


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
    as_json: JsonOption = False,
) -> None:
    """Show one memory as a JSON object, or its version history as a JSON array."""
    with open_cube(cube, index=False) as mc:
        items = _run(lambda: mc.history(id) if history else [mc.get(id)])
    data = [i.model_dump(mode="json") for i in items]
    emit(data if history else data[0], as_json)


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
    with open_cube(cube, index=False) as mc:
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
    with open_cube(cube, index=False) as mc:
        _run(lambda: mc.delete(id, purge=purge))
    if as_json:
        typer.echo(json.dumps({"id": id, "deleted": True, "purged": purge}))
    else:
        console.print(f"{'purged' if purge else 'deleted'} {id}")


@app.command()
def forget(
    ids: Annotated[list[str] | None, typer.Argument(help="Memory ids to erase.")] = None,
    cube: CubePath = Path("memory"),
    user: Annotated[str | None, typer.Option(help="Erase every memory of this user.")] = None,
    agent: Annotated[str | None, typer.Option(help="... of this agent.")] = None,
    session: Annotated[str | None, typer.Option(help="... of this session.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Erase memories for good, with the facts and summaries derived from them (no restore).
    Give ids, or --user/--agent/--session (together: memories matching all of them)."""
    with open_cube(cube, index=False) as mc:
        gone = _run(lambda: mc.forget(ids or None, user=user, agent=agent, session=session))
    text = f"forgot {gone.count} memories ({len(gone.derived)} derived from them)"
    emit(gone.model_dump(mode="json") | {"count": gone.count}, as_json, text)


@app.command("export")
def export_(
    archive: Annotated[Path, typer.Argument(help="Archive file to write (.zip).")],
    cube: CubePath = Path("memory"),
    as_json: JsonOption = False,
) -> None:
    """Export a cube into one archive."""
    with open_cube(cube, index=False) as mc:
        path = _run(lambda: mc.export(archive))
    emit({"cube": mc.name, "archive": str(path)}, as_json, f"exported {mc.name} to {path}")


@app.command("import")
def import_(
    archive: Annotated[Path, typer.Argument(help="Archive written by `cubemem export`.")],
    path: Annotated[Path, typer.Argument(help="Folder for the new cube.")],
    as_json: JsonOption = False,
) -> None:
    """Recreate a cube from an archive."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        _fail(f"{path} already exists; import into a new folder")
    if not archive.is_file():
        _fail(f"{archive} is not a file; give the .zip that `cubemem export` wrote")
    with _run(lambda: MemCube.import_(archive, path)) as mc:
        done = {"cube": mc.name, "path": str(mc.path), "active": mc.count()}
    emit(done, as_json, f"imported {done['active']} active memories into {mc.path}")


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
    as_json: JsonOption = False,
) -> None:
    """Re-embed every memory with another embedder (ids, versions and provenance stay)."""
    from cubemem.embed import as_embedder

    quiet_model_loading()
    open_cube(cube, index=False).close()  # a clear error if there is no cube
    with console.status(f"re-embedding {cube} with {embedder}", spinner="dots") as status:
        if as_json:
            status.stop()
        mc = _run(lambda: reindex_cube(cube, _run(lambda: as_embedder(embedder))))
    with mc:
        done = {
            "cube": mc.name,
            "memories": mc.count(Filters.everything()),
            "embedder": mc.manifest.embedder,
            "dimension": mc.manifest.dimension,
        }
    emit(
        done,
        as_json,
        f"{mc.name}: {done['memories']} memories now embedded by {done['embedder']} "
        f"(dimension {done['dimension']})",
    )


@app.command()
def stats(cube: CubePath = Path("memory"), as_json: JsonOption = False) -> None:
    """Counts and identity of a cube."""
    with open_cube(cube, index=False) as mc:
        emit(mc.stats(), as_json)


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
    table = Table(
        title=f"[bold]{query}[/]",
        title_justify="left",
        show_lines=False,
        caption="relevance: how well each memory matches, 0 to 1 (what --min-score keeps)",
        caption_justify="left",
    )
    for column, style in (
        ("relevance", "cyan"),
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
            f"{hit.relevance:.2f}",
            item.provenance.speaker or "",
            f"{when:%Y-%m-%d}" if when else "",
            item.content,
            f"{item.provenance.source} {','.join(item.provenance.source_ids)} v{item.version}",
        )
    return table


def _register_shared_memory_commands() -> None:
    from cubemem.cli import root
    from cubemem.server import commands

    commands.register(app)
    root.register(app)


_register_shared_memory_commands()


plain_types()
