"""The serving commands of the ``cubemem`` CLI: ``serve``, ``mcp``, ``openapi`` and
``migrate``, over a MemoryOS root (``--data``); the commands that manage a root's cubes,
agents and grants are ``cubemem.cli.root``. FastAPI, uvicorn and the MCP SDK are imported only
by the command that needs them."""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from cubemem.os import MemoryOS

DataDir = Annotated[
    Path,
    typer.Option("--data", "-d", envvar="CUBEMEM_DATA", help="The MemoryOS root folder."),
]


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(mcp)
    app.command()(openapi)
    app.command()(ui)
    app.command()(migrate)


def serve(
    data: DataDir = Path("cubemem-data"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the MemoryOS at --data over HTTP (REST; OpenAPI at /docs and /openapi.json).

    Every call needs an agent's API key. While the root has no operator, an operator agent
    named "admin" is created and its key printed once, on stderr (a lost one:
    `cubemem operator-key --rotate`).
    """
    import uvicorn

    from cubemem.cli.output import err_console, warm_up
    from cubemem.cli.root import BY, OPERATOR, show_operator_key
    from cubemem.errors import InvalidInputError
    from cubemem.server.app import create_app
    from cubemem.server.routes.service import Readiness

    os_ = MemoryOS(data)
    operators = [a.name for a in os_.access.agents() if a.operator and a.name != BY]
    if not operators:
        try:
            _, key = os_.access.create_agent(OPERATOR, trust=1.0, operator=True)
            show_operator_key(OPERATOR, key)
        except InvalidInputError:  # another server on this root made it first, or the name
            err_console.print(  # is an agent's that is not an operator
                f"no operator key shown: agent {OPERATOR!r} exists; `cubemem operator-key "
                f"--name NAME --data {data}` makes an operator",
                highlight=False,
                soft_wrap=True,
            )
    else:
        err_console.print(
            f"operators: {', '.join(operators)} (a lost key: `cubemem operator-key --rotate "
            f"--name NAME --data {data}`)",
            highlight=False,
            soft_wrap=True,
        )
    if not _loopback(host):
        err_console.print(
            f"[yellow]warning:[/] listening on {host} without TLS; put a TLS proxy in front so "
            "API keys never cross the network in clear",
            highlight=False,
        )
    app = create_app(os_)
    app.state.readiness = readiness = Readiness(ready=False)
    # answer at once (/health, /ready: 503) and warm meanwhile; /ready turns 200 when done
    warming = threading.Thread(
        target=readiness.run,
        args=(lambda: warm_up("cubemem serve", os_.warm, fatal=False),),
        name="cubemem-warm-up",
        daemon=True,
    )
    try:
        warming.start()
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        os_.close()


def ui(
    data: Annotated[
        Path, typer.Argument(help="A MemoryOS root, or a cube folder (its parent is the root).")
    ] = Path("cubemem-data"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8766,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the link in a browser.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """The web inspector of a local root on 127.0.0.1, with a one-time login link (printed;
    opened in your browser with --open). It logs in as the operator "inspector", made on the
    first run and given a new key on each (the last run's sessions end)."""
    import uvicorn

    from cubemem.cli.output import fail
    from cubemem.cli.root import BY
    from cubemem.cube.folder import is_cube
    from cubemem.server.app import create_app
    from cubemem.server.ui import one_time_login

    root = data.parent if is_cube(data) else data
    os_ = MemoryOS(root)
    try:
        known = {a.name: a for a in os_.access.agents()}
        if "inspector" not in known:
            _, key = os_.access.create_agent("inspector", trust=1.0, operator=True)
        elif known["inspector"].operator:
            key = os_.access.rotate_key("inspector", by=BY)
        else:
            fail('agent "inspector" exists and is not an operator; rename it or make it one')
        app = create_app(os_)
        link = f"http://127.0.0.1:{port}/ui/login/once?token={one_time_login(app, key)}"
        typer.echo(f"cubemem inspector of {root}: {link}")
        sys.stdout.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(link)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level=log_level)
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
    from cubemem.cli.output import warm_up
    from cubemem.server.mcp import build_mcp

    if transport not in ("stdio", "http"):
        _fail(f"--transport is stdio or http, not {transport!r}")
    os_ = MemoryOS(data)
    try:
        if transport == "stdio":
            server = _run(lambda: build_mcp(os_, key=key, default_cube=cube))
            warm_up("cubemem mcp", os_.warm)
            server.run("stdio")
        else:
            url = f"http://{host}:{port}/mcp"
            server = _run(lambda: build_mcp(os_, http_url=url, default_cube=cube))
            warm_up("cubemem mcp", os_.warm)
            server.run("streamable-http", host=host, port=port)
    finally:
        os_.close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
