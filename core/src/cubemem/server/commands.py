"""The shared-memory commands of the ``cubemem`` CLI: ``serve``, ``mcp``, ``agents``,
``grant``/``revoke``, ``review`` and ``audit``. They act on a MemoryOS root (``--data``);
run on the machine that holds it, they act as its owner (the audit log records ``cli``).
FastAPI, uvicorn and the MCP SDK are imported only by the command that needs them."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cubemem.os import MemoryOS

DataDir = Annotated[
    Path,
    typer.Option("--data", "-d", envvar="CUBEMEM_DATA", help="The MemoryOS root folder."),
]
BY = "cli"
"""How the audit log names changes made from this CLI."""

agents_app = typer.Typer(help="Agents: identities with API keys and trust.", no_args_is_help=True)
review_app = typer.Typer(help="Quarantined memories: list, approve, reject.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(mcp)
    app.command()(grant)
    app.command()(revoke)
    app.command()(audit)
    app.command()(openapi)
    app.command()(migrate)
    app.add_typer(agents_app, name="agents")
    app.add_typer(review_app, name="review")


def _os(data: Path) -> MemoryOS:
    from cubemem.cli.output import run as _run
    from cubemem.settings import Settings

    return _run(lambda: MemoryOS(data, settings=Settings(workers=0)))


def _print_json(value: Any) -> None:
    from cubemem.cli.output import console

    console.print_json(json.dumps(value, default=str))


def serve(
    data: DataDir = Path("cubemem-data"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the MemoryOS at --data over HTTP (REST; OpenAPI at /docs and /openapi.json).

    Every call needs an agent's API key. On the first start (no agents yet) an operator agent
    named "admin" is created and its key printed once, on stderr.
    """
    import uvicorn

    from cubemem.cli.output import err_console
    from cubemem.errors import InvalidInputError
    from cubemem.server.app import create_app

    os_ = MemoryOS(data)
    key = None
    if not os_.access.configured:
        try:
            _, key = os_.access.create_agent("admin", trust=1.0, operator=True)
        except InvalidInputError:  # another server on this root made it first
            key = None
    if key is not None:
        err_console.print(
            f"created operator agent 'admin' with API key:\n  {key}\nIt is not shown again: keep "
            "it now (create agents with POST /v1/agents or `cubemem agents create`).",
            highlight=False,
            soft_wrap=True,
        )
    if not _loopback(host):
        err_console.print(
            f"[yellow]warning:[/] listening on {host} without TLS; put a TLS proxy in front so "
            "API keys never cross the network in clear",
            highlight=False,
        )
    try:
        uvicorn.run(create_app(os_), host=host, port=port, log_level=log_level)
    finally:
        os_.close()


def openapi(
    out: Annotated[Path | None, typer.Option(help="Write to this file (default: stdout).")] = None,
) -> None:
    """Print the REST API's OpenAPI schema (as `cubemem serve` serves it at /openapi.json)."""
    from cubemem.server.app import openapi_schema

    text = json.dumps(openapi_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def migrate(
    store: Annotated[
        str,
        typer.Option(envvar="CUBEMEM_STORE_URL", help="postgresql://user:password@host/db"),
    ],
) -> None:
    """Bring a PostgreSQL store to this cubemem's schema (cubes also do it on first use)."""
    from cubemem.cli.output import console
    from cubemem.cli.output import run as _run
    from cubemem.store import engine_of
    from cubemem.store.postgres_schema import migrate as migrate_store

    if _run(lambda: engine_of(store)) != "postgresql":
        console.print("the embedded engine migrates each cube when it opens; nothing to do")
        return
    version = _run(lambda: migrate_store(store))
    console.print(f"schema version {version}")


def mcp(
    data: DataDir = Path("cubemem-data"),
    transport: Annotated[str, typer.Option(help="stdio or http.")] = "stdio",
    key: Annotated[
        str | None,
        typer.Option(envvar="CUBEMEM_API_KEY", help="The agent a stdio server acts for."),
    ] = None,
    cube: Annotated[str, typer.Option(help="Cube the tools use when none is named.")] = "default",
    host: Annotated[str, typer.Option(help="Address (http).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (http); the endpoint is /mcp.")] = 8766,
) -> None:
    """Serve the MemoryOS as MCP tools (add, search, get, update, delete, history)."""
    from cubemem.cli.output import fail as _fail
    from cubemem.cli.output import run as _run
    from cubemem.server.mcp import build_mcp

    if transport not in ("stdio", "http"):
        _fail(f"--transport is stdio or http, not {transport!r}")
    os_ = MemoryOS(data)
    try:
        if transport == "stdio":
            server = _run(lambda: build_mcp(os_, key=key, default_cube=cube))
            server.run("stdio")
        else:
            url = f"http://{host}:{port}/mcp"
            server = _run(lambda: build_mcp(os_, http_url=url, default_cube=cube))
            server.run("streamable-http", host=host, port=port)
    finally:
        os_.close()


@agents_app.command("create")
def agents_create(
    name: Annotated[str, typer.Argument(help="The agent's unique name.")],
    data: DataDir = Path("cubemem-data"),
    trust: Annotated[float, typer.Option(help="Trust from 0 to 1.")] = 0.5,
    operator: Annotated[bool, typer.Option(help="May manage agents and cubes.")] = False,
) -> None:
    """Create an agent and print its API key (shown this once)."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        agent, key = _run(lambda: os_.access.create_agent(name, trust=trust, operator=operator))
        _print_json({"agent": agent.model_dump(mode="json"), "key": key})


@agents_app.command("list")
def agents_list(data: DataDir = Path("cubemem-data")) -> None:
    """Every agent (never their keys)."""
    with _os(data) as os_:
        _print_json([a.model_dump(mode="json") for a in os_.access.agents()])


@agents_app.command("update")
def agents_update(
    name: Annotated[str, typer.Argument(help="Agent name or id.")],
    data: DataDir = Path("cubemem-data"),
    trust: Annotated[float | None, typer.Option(help="New trust.")] = None,
    disabled: Annotated[bool | None, typer.Option(help="Refuse its key.")] = None,
) -> None:
    """Change an agent's trust, or disable it."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        agent = _run(lambda: os_.access.update_agent(name, trust=trust, disabled=disabled, by=BY))
        _print_json(agent.model_dump(mode="json"))


@agents_app.command("rotate-key")
def agents_rotate(
    name: Annotated[str, typer.Argument(help="Agent name or id.")],
    data: DataDir = Path("cubemem-data"),
) -> None:
    """Give an agent a new key (printed once); the old one stops working."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        _print_json({"key": _run(lambda: os_.access.rotate_key(name, by=BY))})


@agents_app.command("delete")
def agents_delete(
    name: Annotated[str, typer.Argument(help="Agent name or id.")],
    data: DataDir = Path("cubemem-data"),
) -> None:
    """Remove an agent and its grants (its memories stay)."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        _run(lambda: os_.access.delete_agent(name, by=BY))


def grant(
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    right: Annotated[str, typer.Argument(help="read, write or admin.")],
    data: DataDir = Path("cubemem-data"),
    user: Annotated[str | None, typer.Option(help="Only memories of this user.")] = None,
    own_agent_scope: Annotated[
        bool, typer.Option(help="Only memories of the agent's own agent scope.")
    ] = False,
) -> None:
    """Give an agent a right on a cube (replacing the one it had)."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        target = _run(lambda: os_.access.agent(agent))
        wanted = {"user": user, "agent": target.name if own_agent_scope else None}
        scope = {k: v for k, v in wanted.items() if v} or None
        made = _run(lambda: os_.access.grant(agent, cube, right, scope=scope, by=BY))
        _print_json(made.model_dump(mode="json"))


def revoke(
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    data: DataDir = Path("cubemem-data"),
) -> None:
    """Take an agent's right on a cube away."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        _run(lambda: os_.access.revoke(agent, cube, by=BY))


def audit(
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    data: DataDir = Path("cubemem-data"),
    memory: Annotated[str | None, typer.Option(help="Only this memory.")] = None,
    limit: Annotated[int, typer.Option(help="Entries, newest first.")] = 50,
) -> None:
    """Who wrote, changed, approved and deleted what, as JSON."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        entries = _run(lambda: os_.access.audit(cube=cube, memory_id=memory, limit=limit))
        _print_json([e.model_dump(mode="json") for e in entries])


@review_app.command("list")
def review_list(
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    data: DataDir = Path("cubemem-data"),
) -> None:
    """Quarantined memories with their author and the screen's flag, as JSON."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        handle = _run(lambda: os_.open_cube(cube))
        items = handle.list({"status": "quarantined"}, limit=1000)
        _print_json(
            [
                {
                    "id": i.id,
                    "version": i.version,
                    "content": i.content,
                    "author": i.changed_by or i.provenance.author_agent,
                    "trust": i.provenance.trust,
                    "flag": i.metadata.get("cubemem_flag"),
                }
                for i in items
            ]
        )


def _review(cube: str, id_: str, data: Path, approve: bool) -> None:
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        reviewer = _run(lambda: os_.as_agent(_cli_operator(os_)))
        handle = _run(lambda: reviewer.open_cube(cube))
        item = _run(lambda: handle.approve(id_) if approve else handle.reject(id_))
        _print_json({"id": item.id, "version": item.version, "status": item.status.value})


def _cli_operator(os_: MemoryOS) -> str:
    """The operator the CLI reviews as: ``cli`` (made on first use)."""
    names = {a.name for a in os_.access.agents()}
    if BY not in names:
        os_.access.create_agent(BY, trust=1.0, operator=True)
    return BY


@review_app.command("approve")
def review_approve(
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    id: Annotated[str, typer.Argument(help="Memory id.")],
    data: DataDir = Path("cubemem-data"),
) -> None:
    """Publish a quarantined memory."""
    _review(cube, id, data, approve=True)


@review_app.command("reject")
def review_reject(
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    id: Annotated[str, typer.Argument(help="Memory id.")],
    data: DataDir = Path("cubemem-data"),
) -> None:
    """Refuse a quarantined memory (a new one is deleted; a proposed change is retired and
    the memory stays as it was)."""
    _review(cube, id, data, approve=False)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
