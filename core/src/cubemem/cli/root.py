"""The ``cubemem`` commands over a MemoryOS root (``--data``): ``cubes``, ``agents``,
``operator-key``, ``grant``/``revoke``, ``review`` and ``audit``. Run on the machine that holds
the root, they act as its owner (the audit log records ``cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cubemem.os import MemoryOS

JsonOption = Annotated[bool, typer.Option("--json", help="Print one line of JSON only.")]
DataDir = Annotated[
    Path,
    typer.Option("--data", "-d", envvar="CUBEMEM_DATA", help="The MemoryOS root folder."),
]
BY = "cli"
"""How the audit log names changes made from this CLI."""
OPERATOR = "admin"
"""The operator agent ``serve`` and ``operator-key`` make when a root has none."""

cubes_app = typer.Typer(help="Cubes of a MemoryOS root: create, list.", no_args_is_help=True)
agents_app = typer.Typer(help="Agents: identities with API keys and trust.", no_args_is_help=True)
review_app = typer.Typer(help="Quarantined memories: list, approve, reject.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cubes_app, name="cubes")
    app.add_typer(agents_app, name="agents")
    app.command("operator-key")(operator_key)
    app.command()(grant)
    app.command()(revoke)
    app.command()(audit)
    app.add_typer(review_app, name="review")


def _os(data: Path) -> MemoryOS:
    from cubemem.cli.output import run as _run
    from cubemem.settings import Settings

    return _run(lambda: MemoryOS(data, settings=Settings(workers=0)))


def _print_json(value: Any, as_json: bool, human: str | None = None) -> None:
    from cubemem.cli.output import emit

    emit(value, as_json, human)


def show_operator_key(name: str, key: str) -> None:
    from cubemem.cli.output import err_console

    err_console.print(
        f"operator agent {name!r}, API key:\n  {key}\nIt is not shown again: keep it now "
        "(create agents with POST /v1/agents or `cubemem agents create`).",
        highlight=False,
        soft_wrap=True,
    )


@cubes_app.command("create")
def cubes_create(
    name: Annotated[str, typer.Argument(help="The new cube's name.")],
    data: DataDir = Path("cubemem-data"),
    owner: Annotated[str | None, typer.Option(help="Who owns the cube.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a cube in the root (agents reach it once granted: `cubemem grant`)."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        cube = _run(lambda: os_.create_cube(name, owner=owner))
        made = {"name": cube.name, "root": str(data), "embedder": cube.manifest.embedder}
    _print_json(made, as_json, f"created cube {name!r} in {data}")


@cubes_app.command("list")
def cubes_list(data: DataDir = Path("cubemem-data"), as_json: JsonOption = False) -> None:
    """The cubes in the root."""
    with _os(data) as os_:
        names = os_.list_cubes()
    _print_json(names, as_json, "\n".join(names) if names else f"no cubes in {data}")


def operator_key(
    data: DataDir = Path("cubemem-data"),
    name: Annotated[str, typer.Option(help="The operator agent.")] = OPERATOR,
    rotate: Annotated[
        bool, typer.Option(help="Give an existing operator a new key (the old one stops).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Make an operator agent and print its API key (--rotate: a new key for one).

    Keys are stored hashed, so a key is shown only when it is made; a lost one is replaced
    with --rotate (the old key stops working).
    """
    from cubemem.cli.output import fail as _fail
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        existing = {a.name: a for a in os_.access.agents()}.get(name)
        if existing is None:
            _, key = _run(lambda: os_.access.create_agent(name, trust=1.0, operator=True))
        elif not existing.operator:
            _fail(f"agent {name!r} is not an operator; choose another --name")
        elif not rotate:
            _fail(
                f"operator {name!r} exists and its key was shown when it was made; --rotate "
                "gives it a new one (the old key stops working)"
            )
        else:
            key = _run(lambda: os_.access.rotate_key(name, by=BY))
    _print_json({"agent": name, "key": key}, as_json, f"operator {name!r}, API key:\n  {key}")


@agents_app.command("create")
def agents_create(
    name: Annotated[str, typer.Argument(help="The agent's unique name.")],
    data: DataDir = Path("cubemem-data"),
    trust: Annotated[float, typer.Option(help="Trust from 0 to 1.")] = 0.5,
    operator: Annotated[bool, typer.Option(help="May manage agents and cubes.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an agent and print its API key (shown this once)."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        agent, key = _run(lambda: os_.access.create_agent(name, trust=trust, operator=operator))
    human = (
        f"created agent {agent.name!r} (trust {agent.trust:g}"
        f"{', operator' if agent.operator else ''}); its API key, shown this once:\n  {key}\n"
        f"give it a right on a cube with `cubemem grant {agent.name} CUBE read|write|admin`"
    )
    _print_json({"agent": agent.model_dump(mode="json"), "key": key}, as_json, human)


@agents_app.command("list")
def agents_list(data: DataDir = Path("cubemem-data"), as_json: JsonOption = False) -> None:
    """Every agent (never their keys)."""
    with _os(data) as os_:
        _print_json([a.model_dump(mode="json") for a in os_.access.agents()], as_json)


@agents_app.command("update")
def agents_update(
    name: Annotated[str, typer.Argument(help="Agent name or id.")],
    data: DataDir = Path("cubemem-data"),
    trust: Annotated[float | None, typer.Option(help="New trust.")] = None,
    disabled: Annotated[bool | None, typer.Option(help="Refuse its key.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change an agent's trust, or disable it."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        agent = _run(lambda: os_.access.update_agent(name, trust=trust, disabled=disabled, by=BY))
        _print_json(agent.model_dump(mode="json"), as_json)


@agents_app.command("rotate-key")
def agents_rotate(
    name: Annotated[str, typer.Argument(help="Agent name or id.")],
    data: DataDir = Path("cubemem-data"),
    as_json: JsonOption = False,
) -> None:
    """Give an agent a new key (printed once); the old one stops working."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        key = _run(lambda: os_.access.rotate_key(name, by=BY))
    _print_json({"agent": name, "key": key}, as_json, f"new API key for {name!r}:\n  {key}")


@agents_app.command("delete")
def agents_delete(
    name: Annotated[str, typer.Argument(help="Agent name or id.")],
    data: DataDir = Path("cubemem-data"),
    as_json: JsonOption = False,
) -> None:
    """Remove an agent and its grants (its memories stay)."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        _run(lambda: os_.access.delete_agent(name, by=BY))
    _print_json({"agent": name, "deleted": True}, as_json, f"deleted agent {name!r}")


def grant(
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    right: Annotated[str, typer.Argument(help="read, write or admin.")],
    data: DataDir = Path("cubemem-data"),
    user: Annotated[str | None, typer.Option(help="Only memories of this user.")] = None,
    own_agent_scope: Annotated[
        bool, typer.Option(help="Only memories of the agent's own agent scope.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Give an agent a right on a cube (replacing the one it had)."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        target = _run(lambda: os_.access.agent(agent))
        wanted = {"user": user, "agent": target.name if own_agent_scope else None}
        scope = {k: v for k, v in wanted.items() if v} or None
        made = _run(lambda: os_.access.grant(agent, cube, right, scope=scope, by=BY))
        _print_json(made.model_dump(mode="json"), as_json)


def revoke(
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    data: DataDir = Path("cubemem-data"),
    as_json: JsonOption = False,
) -> None:
    """Take an agent's right on a cube away."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        _run(lambda: os_.access.revoke(agent, cube, by=BY))
    _print_json(
        {"agent": agent, "cube": cube, "revoked": True}, as_json, f"revoked {agent!r} on {cube!r}"
    )


def audit(
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    data: DataDir = Path("cubemem-data"),
    memory: Annotated[str | None, typer.Option(help="Only this memory.")] = None,
    limit: Annotated[int, typer.Option(help="Entries, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Who wrote, changed, approved and deleted what, as JSON."""
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        entries = _run(lambda: os_.access.audit(cube=cube, memory_id=memory, limit=limit))
        _print_json([e.model_dump(mode="json") for e in entries], as_json)


@review_app.command("list")
def review_list(
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    data: DataDir = Path("cubemem-data"),
    as_json: JsonOption = False,
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
            ],
            as_json,
        )


def _review(cube: str, id_: str, data: Path, approve: bool, as_json: bool) -> None:
    from cubemem.cli.output import run as _run

    with _os(data) as os_:
        reviewer = _run(lambda: os_.as_agent(cli_operator(os_)))
        handle = _run(lambda: reviewer.open_cube(cube))
        item = _run(lambda: handle.approve(id_) if approve else handle.reject(id_))
        done = {"id": item.id, "version": item.version, "status": item.status.value}
    _print_json(done, as_json)


def cli_operator(os_: MemoryOS) -> str:
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
    as_json: JsonOption = False,
) -> None:
    """Publish a quarantined memory."""
    _review(cube, id, data, approve=True, as_json=as_json)


@review_app.command("reject")
def review_reject(
    cube: Annotated[str, typer.Argument(help="Cube name.")],
    id: Annotated[str, typer.Argument(help="Memory id.")],
    data: DataDir = Path("cubemem-data"),
    as_json: JsonOption = False,
) -> None:
    """Refuse a quarantined memory (a new one is deleted; a proposed change is retired).

    The memory a refused proposal would have changed stays as readers saw it.
    """
    _review(cube, id, data, approve=False, as_json=as_json)
