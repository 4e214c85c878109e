"""Access control's rows: the SQLite tables (the PostgreSQL ones are ``store/catalog.py``),
row decoding, and the checks of names, trust values, rights and scopes."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from cubemem import limits
from cubemem.access.records import SCHEMA, Agent, AuditEntry, Right
from cubemem.errors import InvalidInputError
from cubemem.limits import shown
from cubemem.model import Scope, utcnow
from cubemem.sqlite import immediate
from cubemem.store.catalog import DuplicateError

SELECT_AGENTS = "SELECT id, name, trust, operator, disabled, created_at FROM {agents}"


class SqliteTables:
    """The access tables in one SQLite file; statements name tables as ``{table}``."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self.write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def rows(self, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(named(statement), params).fetchall()

    @contextmanager
    def write(self) -> Iterator[Any]:
        try:
            with immediate(self._db, self._lock, "the access database") as db:
                yield Named(db)
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Named:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, statement: str, params: Any = ()) -> sqlite3.Cursor:
        return self._db.execute(named(statement), params)


def named(statement: str) -> str:
    return statement.format(agents="agents", grants="grants", cubes="cubes", audit="audit")


def agent_row(row: tuple[Any, ...]) -> Agent:
    id_, name, trust, operator, disabled, created = row
    return Agent(
        id=id_,
        name=name,
        trust=trust,
        operator=bool(operator),
        disabled=bool(disabled),
        created_at=datetime.fromisoformat(created),
    )


LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def label(value: Any, what: str) -> str:
    if not isinstance(value, str) or not LABEL.fullmatch(value):
        raise InvalidInputError(
            f"{what} {shown(value)} must be 1-128 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return value


def trust_value(value: Any, what: str = "trust") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInputError(f"{what} must be a number from 0 to 1, got {shown(value)}")
    return float(value)


def right_value(value: Any) -> Right:
    try:
        return Right(value)
    except ValueError:
        raise InvalidInputError(
            f"right must be one of {[r.value for r in Right]}, got {shown(value)}"
        ) from None


def scope_value(value: Any) -> Scope | None:
    if value is None or isinstance(value, Scope):
        return value
    if not isinstance(value, dict) or set(value) - {"user", "agent", "session"}:
        raise InvalidInputError(
            f"a grant's scope is a dict of user/agent/session, got {shown(value)}"
        )
    return Scope(**{k: limits.text(v, f"scope {k}") for k, v in value.items() if v is not None})


def scope_dump(scope: Any) -> Any:
    return scope.model_dump(exclude_none=True) if isinstance(scope, Scope) else scope


def plain_changes(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in changes.items()}


def read_audit(
    tables: Any, cube: str | None, memory_id: str | None, limit: int, offset: int
) -> list[AuditEntry]:
    """Audit entries, newest first (``AccessControl.audit``)."""
    sql = "SELECT seq, at, agent, action, cube, memory_id, version, detail FROM {audit} WHERE 1=1"
    args = list[Any]()
    if cube is not None:
        sql, args = sql + " AND cube = ?", [*args, cube]
    if memory_id is not None:
        sql, args = sql + " AND memory_id = ?", [*args, memory_id]
    rows = tables.rows(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*args, limit, offset])
    return [
        AuditEntry(
            seq=s, at=datetime.fromisoformat(at), agent=a, action=act, cube=c,
            memory_id=m, version=v, detail=json.loads(d),
        )
        for s, at, a, act, c, m, v, d in rows
    ]  # fmt: skip


def write_audit(
    db: Any,
    agent: str | None,
    action: str,
    cube: str | None,
    memory_id: str | None = None,
    version: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One audit row in ``db``'s transaction."""
    db.execute(
        "INSERT INTO {audit} (at, agent, action, cube, memory_id, version, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (utcnow().isoformat(), agent, action, cube, memory_id, version, json.dumps(detail or {})),
    )
