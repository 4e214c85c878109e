"""The ``cubemem`` command: manage a cube from the shell, and ``cubemem demo``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cubemem.cli_output import console, err_console
from cubemem.cli_output import fail as _fail
from cubemem.cli_output import run as _run
from cubemem.cube import MemCube
from cubemem.cube import reindex as reindex_cube
from cubemem.errors import InvalidInputError
from cubemem.ingest_file import ingest_plan
from cubemem.manifest import MANIFEST_NAME
from cubemem.model import Filters, MemoryItem, SearchResult, Status

app = typer.Typer(
    name="cubemem",
    help="A memory operating system for LLM agents: MemCubes with provenance and hybrid search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: recall and latency.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
scheduler_app = typer.Typer(help="The cube's background task queue.", no_args_is_help=True)
app.add_typer(scheduler_app, name="scheduler")

CubePath = Annotated[
    Path,
    typer.Option("--cube", "-c", envvar="CUBEMEM_CUBE", help="Folder of the cube."),
]


UserOption = Annotated[str | None, typer.Option(help="Only this user's memories.")]
AgentOption = Annotated[str | None, typer.Option(help="Only this agent's memories.")]
SessionOption = Annotated[str | None, typer.Option(help="Only this session's memories.")]
TagOption = Annotated[list[str] | None, typer.Option(help="A tag (repeatable; all must match).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (and nothing else).")]


def _filters(
    user: str | None, agent: str | None, session: str | None, tags: list[str] | None
) -> dict[str, Any]:
    given = {"user": user, "agent": agent, "session": session, "tags": tags}
    return {key: value for key, value in given.items() if value}


def _open(path: Path, settings: Any = None) -> MemCube:
    """Open the cube at ``path``, or exit with advice in the CLI's terms."""
    if not (path / MANIFEST_NAME).is_file():
        where = "it does not exist" if not path.exists() else f"no {MANIFEST_NAME} in it"
        _fail(
            f"{path} is not a cube ({where}); create one with `cubemem init {path}`, or point "
            "at one with --cube/-c (or CUBEMEM_CUBE)"
        )
    return cast(MemCube, _run(lambda: MemCube.open(path, settings=settings)))


def _quiet_model_loading() -> None:
    """Offline, and no download/loading progress bars (read by huggingface_hub and
    transformers when they are imported — which commands that do not embed never do)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.callback()
def _main() -> None:
    _quiet_model_loading()


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
    with _open(cube) as mc:
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
    with _open(cube) as mc, _progress(stderr=as_json) as bar:
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
    filters = _filters(user, agent, session, tag)
    with _open(cube) as mc:
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
    with _open(cube) as mc:
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
    filters = _filters(user, agent, session, tag)
    if status:
        filters["status"] = [status]
    with _open(cube) as mc:
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
    with _open(cube) as mc:
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
    with _open(cube) as mc:
        _run(lambda: mc.delete(id, purge=purge))
    if as_json:
        typer.echo(json.dumps({"id": id, "deleted": True, "purged": purge}))
    else:
        console.print(f"{'purged' if purge else 'deleted'} {id}")


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
    return _open(cube, Settings(**overrides))


@app.command()
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


@app.command("export")
def export_(
    archive: Annotated[Path, typer.Argument(help="Archive file to write (.zip).")],
    cube: CubePath = Path("memory"),
) -> None:
    """Export a cube into one archive."""
    with _open(cube) as mc:
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

    _quiet_model_loading()
    _open(cube).close()  # a clear error if there is no cube
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
    with _open(cube) as mc:
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
        with mc, _progress() as bar:
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


@bench_app.command("locomo")
def bench_locomo(
    data: Annotated[Path, typer.Option(help="A LoCoMo JSON file.")],
    conversations: Annotated[
        str | None, typer.Option(help="Comma-separated indexes into the file (default: all).")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="raw (every turn), observations (LoCoMo's own facts), both (turns and "
            "observations), or llm (turns plus facts extracted by --llm-model)."
        ),
    ] = "raw",
    k: Annotated[str, typer.Option("--k", help="Comma-separated cut-offs.")] = "1,5,10,20",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    llm_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint for --mode llm.")
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="Chat model for --mode llm.")] = None,
) -> None:
    """Evidence recall@k, search latency and ingest speed on LoCoMo."""
    from cubemem.bench import locomo

    chat = None
    if mode == "llm":
        if not llm_model:
            _fail("--mode llm needs --llm-model (and --llm-base-url for a local server)")
        from cubemem.llm import OpenAIChat

        chat = _run(lambda: OpenAIChat(llm_model, base_url=llm_base_url))
    chosen = _run(lambda: _int_list(conversations, "--conversations")) if conversations else None
    ks = _run(lambda: _int_list(k, "--k"))
    samples = _run(lambda: locomo.load(data))
    indexes = chosen if chosen is not None else list(range(len(samples)))
    total = sum(len(locomo.questions(samples[i])) for i in indexes if 0 <= i < len(samples))
    with _progress() as bar:
        task = bar.add_task(f"locomo {mode}", total=total)
        report = _run(
            lambda: locomo.run(
                data,
                conversations=chosen,
                mode=cast(locomo.Mode, mode),
                ks=ks,
                progress=lambda what, _: bar.advance(task) if what == "question" else None,
                llm=chat,
            )
        )
    table = Table(title=f"LoCoMo evidence recall ({mode}, {report['questions']} questions)")
    for column in ["", *(f"R@{x}" for x in report["recall"])]:
        table.add_column(column, justify="right")
    table.add_row("all", *(f"{v:.3f}" for v in report["recall"].values()))
    for category, row in report["recall_by_category"].items():
        name = locomo.CATEGORY_NAMES[int(category)]
        table.add_row(f"{category} {name}", *(f"{v:.3f}" for v in row.values()))
    console.print(table)
    console.print(
        f"search p50 {report['search_ms']['p50']} ms, p95 {report['search_ms']['p95']} ms; "
        f"ingest {report['ingest_items_per_s']} items/s"
    )
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


@bench_app.command("scale")
def bench_scale(
    items: Annotated[str, typer.Option(help="Comma-separated cube sizes.")] = "10000,100000",
    queries: Annotated[int, typer.Option(help="Searches per size and filter.")] = 500,
    precomputed: Annotated[
        bool, typer.Option(help="Random unit vectors instead of the model (index cost only).")
    ] = False,
    interleave: Annotated[
        int,
        typer.Option(help="Rounds of 'add one memory, then search' after the read-only searches."),
    ] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            help="Measure background ingestion through this queue instead: sqlite or "
            "redis://host:port/db (acknowledged add latency, acked and indexed items/s)."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Also measure this store (postgresql://...) beside the embedded engine, in "
            "the same run."
        ),
    ] = None,
    store_only: Annotated[
        bool,
        typer.Option(
            help="Measure --store alone (when the embedded engine's numbers at these sizes "
            "come from another run: compare them as a rough guide only)."
        ),
    ] = False,
) -> None:
    """Ingest speed, search latency, RSS and disk per item as a cube grows."""
    from cubemem.bench import scale
    from cubemem.store import engine_of

    sizes = _run(lambda: _int_list(items, "--items"))
    if queue is not None:
        _bench_queue(sizes, queue, precomputed, json_out)
        return
    stores = ["sqlite"]
    if store is not None and _run(lambda: engine_of(store)) != "sqlite":
        stores.append(store)
    if store_only:
        if len(stores) == 1:
            _run(_store_only_needs_a_store)
        stores = stores[1:]
    with _progress() as bar:
        ingest = bar.add_task("ingest", total=sum(sizes) * len(stores))
        search = bar.add_task("search", total=(3 * queries + interleave) * len(sizes) * len(stores))
        report = _run(
            lambda: scale.run(
                sizes,
                queries=queries,
                precomputed=precomputed,
                interleave=interleave,
                progress=lambda what, n: bar.advance(ingest if what == "ingest" else search, n),
                stores=stores,
            )
        )
    table = Table(title=f"scale ({report['embedder']}, {queries} queries per filter)")
    for column in (
        "store", "items", "ingest/s", "index build s", "p50 ms", "p95 ms", "p95 user",
        "p95 user+tag", "p95 after add", "RSS MB", "disk B/item",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for r in report["sizes"]:
        ms = r["search_ms"]
        table.add_row(
            r["store"],
            f"{r['items']:,}",
            f"{r['ingest_items_per_s']:,}",
            str(r["index_build_s"]),
            str(ms["unfiltered"]["p50"]),
            str(ms["unfiltered"]["p95"]),
            str(ms["user"]["p95"]),
            str(ms["user+tag"]["p95"]),
            str(ms["after_add"]["p95"]) if "after_add" in ms else "-",
            str(r["rss_mb"]),
            "-" if r["disk_bytes_per_item"] is None else f"{r['disk_bytes_per_item']:,}",
        )
    console.print(table)
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


@bench_app.command("facts")
def bench_facts(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated cube sizes; 'all' for every fact.")
    ] = "10,30,100,all",
    data: Annotated[
        Path | None, typer.Option(help="A fact-set JSON file (default: the bundled one).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """One-line facts, one right fact per question: the default fusion beside dense and BM25."""
    from cubemem.bench import facts

    parts = [p.strip() for p in sizes.split(",") if p.strip()]
    chosen: list[int | None] = [
        None if p == "all" else _run(lambda p=p: _int_list(p, "--sizes"))[0] for p in parts
    ]
    _quiet_model_loading()
    report = _run(lambda: facts.run(chosen, path=data))
    table = Table(title=f"fact set ({report['facts']} facts)")
    for column in ("memories", "system", "questions", "hit@1", "hit@3", "MRR@10", "p95 ms"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(
            str(r["memories"]), r["system"], str(r["questions"]), str(r["hit@1"]),
            str(r["hit@3"]), str(r["mrr@10"]), str(r["search_ms_p95"]),
        )  # fmt: skip
    console.print(table)
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


@bench_app.command("activation")
def bench_activation(
    prefix_tokens: Annotated[
        str, typer.Option(help="Comma-separated memory prefix lengths in tokens.")
    ] = "512,2048",
    repeats: Annotated[int, typer.Option(help="Timed runs per measurement (median).")] = 3,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda ...")] = "cpu",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Time to first token with memory re-prefilled vs injected as a KV cache (~50M model)."""
    try:
        from cubemem_activation import bench
    except ImportError:
        _run(_missing_activation)
        return
    sizes = _run(lambda: _int_list(prefix_tokens, "--prefix-tokens"))
    with _progress() as bar:
        task = bar.add_task("prefix lengths", total=len(sizes))
        report = _run(
            lambda: bench.run(
                sizes, repeats=repeats, device=device, progress=lambda n: bar.advance(task, n)
            )
        )
    table = Table(title=f"activation memory ({report['model_params'] / 1e6:.0f}M params, "
                  f"{report['device']})")  # fmt: skip
    for column in (
        "prefix tokens", "TTFT prefill ms", "TTFT injected ms", "speedup", "greedy identical",
        "block build ms", "block MB", "KL naive", "KL rotated", "KL sequential",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for r in report["results"]:
        kl = {s: r["composition"][s]["kl"] for s in r["composition"]}
        table.add_row(
            str(r["prefix_tokens"]), str(r["ttft_ms_prefill"]), str(r["ttft_ms_injected"]),
            f"{r['speedup']}x", str(r["greedy_identical"]), str(r["block_build_ms"]),
            f"{r['block_bytes'] / 2**20:.1f}", str(kl["naive"]), str(kl["rotated"]),
            str(kl["sequential"]),
        )  # fmt: skip
    console.print(table)
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


@bench_app.command("parametric")
def bench_parametric(
    facts: Annotated[int, typer.Option(help="Facts to memorise (1-20).")] = 12,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    learning_rate: Annotated[float, typer.Option(help="LoRA learning rate.")] = 3e-3,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the facts, the model and training.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Recall of facts trained into a LoRA adapter, on unseen phrasings, vs the base model and
    vs the facts as prompt text (a tiny model built on the spot, CPU)."""
    try:
        from cubemem_activation import bench_parametric as bench
    except ImportError:
        _run(_missing_activation)
        return
    with _progress() as bar:
        task = bar.add_task("questions", total=facts * 7)
        report = _run(
            lambda: bench.run(
                facts, epochs=epochs, learning_rate=learning_rate, rank=rank, seed=seed,
                progress=lambda n: bar.advance(task, n),
            )
        )  # fmt: skip
    table = Table(
        title=f"parametric memory ({report['model_params']:,} params, {report['device']})"
    )
    for column in ("facts", "recall base", "recall plaintext", "recall adapter",
                   "adapter, trained phrasing", "prompt tokens saved/turn", "train s/memory",
                   "loss first -> last"):  # fmt: skip
        table.add_column(column, justify="right")
    recall, training = report["recall_held_out"], report["training"]
    table.add_row(
        str(report["facts"]), str(recall["base"]), str(recall["plaintext"]),
        str(recall["adapter"]), str(report["recall_trained_phrasing_adapter"]),
        str(report["prompt_tokens_saved_per_turn"]), str(training["seconds_per_memory"]),
        f"{training['loss_first']} -> {training['loss_last']}",
    )  # fmt: skip
    console.print(table)
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _store_only_needs_a_store() -> None:
    raise InvalidInputError(
        "--store-only measures the --store engine: pass --store postgresql://..."
    )


def _missing_activation() -> None:
    raise InvalidInputError(
        "activation memory needs the cubemem-activation package: pip install cubemem-activation"
    )


def _bench_queue(sizes: list[int], queue: str, precomputed: bool, json_out: Path | None) -> None:
    from cubemem.bench import scale
    from cubemem.embed import SentenceTransformerEmbedder

    embedder = scale.RandomEmbedder() if precomputed else SentenceTransformerEmbedder()
    results = []
    with _progress() as bar, tempfile.TemporaryDirectory(prefix="cubemem-queue-") as tmp:
        task = bar.add_task("inline, background, drain", total=5 * sum(sizes))
        for size in sizes:
            results.append(
                _run(
                    lambda size=size: scale.run_queue(
                        size,
                        queue_url=queue,
                        embedder=embedder,
                        workdir=Path(tmp),
                        progress=lambda _, n: bar.advance(task, n),
                    )
                )
            )
    report = {
        "benchmark": "scale-queue",
        "embedder": "precomputed random unit vectors" if precomputed else "all-MiniLM-L6-v2",
        "results": results,
    }
    table = Table(title=f"background ingestion through {queue}")
    for column in (
        "items", "ack p50 ms", "ack p95 ms", "acked/s", "indexed/s", "drained/s",
        "inline batched/s", "indexed ÷ inline", "drained ÷ inline",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r['items']:,}",
            str(r["ack_ms"]["p50"]),
            str(r["ack_ms"]["p95"]),
            f"{r['acked_per_s']:,}",
            f"{r['indexed_per_s']:,}",
            f"{r['drained_per_s']:,}",
            f"{r['inline_batched_per_s']:,}",
            str(r["indexed_vs_inline"]),
            str(r["drained_vs_inline"]),
        )
    console.print(table)
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(f"{option} takes comma-separated integers, got {text!r}") from None


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


def _progress(*, stderr: bool = False) -> Progress:
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


def _register_shared_memory_commands() -> None:
    from cubemem.server.commands import register

    register(app)


_register_shared_memory_commands()

if __name__ == "__main__":  # pragma: no cover
    app()
