"""``cubemem redaction`` and ``cubemem retention``: a cube's governance (docs/governance.md).
``cubemem forget`` is beside ``delete`` in ``cubemem.cli``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cubemem.cli.options import CubePath, JsonOption, open_cube
from cubemem.cli.output import emit
from cubemem.cli.output import run as _run

redaction_app = typer.Typer(
    help="Personal data redacted before anything is stored: show, set.", no_args_is_help=True
)
retention_app = typer.Typer(
    help="How long memories are kept: list, add, remove, run (--dry-run).", no_args_is_help=True
)
ActionOption = Annotated[str | None, typer.Option(help="off, mask, drop or hash.")]


def register(app: typer.Typer) -> None:
    app.add_typer(redaction_app, name="redaction")
    app.add_typer(retention_app, name="retention")


def _shown(policy: Any) -> dict[str, Any]:
    if policy is None:
        return {"redaction": "off"}
    return policy.model_dump(exclude={"salt"})  # the hash key stays in the cube


@redaction_app.command("show")
def redaction_show(cube: CubePath = Path("memory"), as_json: JsonOption = False) -> None:
    """The cube's redaction policy (what each kind of personal data becomes)."""
    with open_cube(cube, index=False) as mc:
        emit(_shown(mc.maintenance.redaction), as_json)


@redaction_app.command("set")
def redaction_set(
    cube: CubePath = Path("memory"),
    all_: Annotated[
        str | None, typer.Option("--all", help="Every kind: off/mask/drop/hash.")
    ] = None,
    email: ActionOption = None,
    phone: ActionOption = None,
    card: ActionOption = None,
    iban: ActionOption = None,
    national_id: ActionOption = None,
    ip: ActionOption = None,
    api_key: ActionOption = None,
    phone_region: Annotated[
        str | None, typer.Option(help="Two-letter country for numbers without +.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="No redaction at all.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Change the redaction policy: --all sets every kind, the others one kind each; kinds not
    named keep what they had. Applies to every later write, in every process."""
    given = {
        "email": email,
        "phone": phone,
        "card": card,
        "iban": iban,
        "national_id": national_id,
        "ip": ip,
        "api_key": api_key,
        "phone_region": phone_region,
    }
    with open_cube(cube, index=False) as mc:
        if clear:
            _run(lambda: mc.maintenance.set_redaction(None))
        else:
            current = mc.maintenance.redaction
            policy = current.model_dump() if current is not None else {}
            if all_ is not None:
                policy |= dict.fromkeys(
                    ("email", "phone", "card", "iban", "national_id", "ip", "api_key"), all_
                )
            policy |= {k: v for k, v in given.items() if v is not None}
            _run(lambda: mc.maintenance.set_redaction(policy))
        emit(_shown(mc.maintenance.redaction), as_json)


@retention_app.command("list")
def retention_list(cube: CubePath = Path("memory"), as_json: JsonOption = False) -> None:
    """The cube's retention rules."""
    with open_cube(cube, index=False) as mc:
        emit([r.model_dump() for r in mc.maintenance.retention], as_json)


@retention_app.command("add")
def retention_add(
    name: Annotated[str, typer.Argument(help="The rule's name.")],
    cube: CubePath = Path("memory"),
    keep_days: Annotated[float | None, typer.Option(help="Forget what is older.")] = None,
    keep_last: Annotated[int | None, typer.Option(help="Keep the newest N.")] = None,
    forget_deleted: Annotated[
        bool, typer.Option(help="Forget what was deleted (a deleted session, for good).")
    ] = False,
    user: Annotated[str | None, typer.Option(help="Only this user's memories.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only memories with this tag.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only memories of this kind.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add (or replace, by name) a retention rule."""
    filters = {"user": user, "agent": agent, "tags": tag or None, "kind": kind}
    rule = {
        "name": name,
        "filters": {k: v for k, v in filters.items() if v is not None},
        "keep_days": keep_days,
        "keep_last": keep_last,
        "forget_deleted": forget_deleted,
    }
    with open_cube(cube, index=False) as mc:
        rules: list[Any] = [r for r in mc.maintenance.retention if r.name != name]
        _run(lambda: mc.maintenance.set_retention([*rules, rule]))
        emit([r.model_dump() for r in mc.maintenance.retention], as_json)


@retention_app.command("remove")
def retention_remove(
    name: Annotated[str, typer.Argument(help="The rule's name.")],
    cube: CubePath = Path("memory"),
    as_json: JsonOption = False,
) -> None:
    """Remove a retention rule."""
    with open_cube(cube, index=False) as mc:
        rules = mc.maintenance.retention
        if name not in [r.name for r in rules]:
            _run(lambda: _missing(name, [r.name for r in rules]))
        _run(lambda: mc.maintenance.set_retention([r for r in rules if r.name != name]))
        emit([r.model_dump() for r in mc.maintenance.retention], as_json)


def _missing(name: str, names: list[str]) -> None:
    from cubemem.errors import NotFoundError

    raise NotFoundError(f"no retention rule {name!r}; the cube has {names}")


@retention_app.command("run")
def retention_run(
    cube: CubePath = Path("memory"),
    dry_run: Annotated[bool, typer.Option(help="List what would go; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the retention rules now (the scheduler's lifecycle sweep runs them too)."""
    with open_cube(cube) as mc:
        reports = _run(lambda: mc.maintenance.apply_retention(dry_run=dry_run))
    rows = [r.model_dump() | {"count": r.count} for r in reports]
    verb = "would forget" if dry_run else "forgot"
    emit(rows, as_json, "\n".join(f"{r.rule}: {verb} {r.count}" for r in reports) or "no rules")
