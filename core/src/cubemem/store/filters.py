"""``Filters`` as SQL, for both engines: one walk over the filter (columns, tags, times,
namespaces, expiry, and JSON matching of ``metadata`` and ``value`` with LangGraph's store
operators plus ``$in``/``$nin``), validated once; a ``Dialect`` says how each piece is
written in SQLite (``json_extract``) or PostgreSQL (JSONB).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cubemem.errors import InvalidFilterError
from cubemem.limits import shown
from cubemem.model import NAMESPACE_SEPARATOR, Filters, encode_namespace

COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = ("$eq", "$ne", *COMPARISONS, "$in", "$nin")
Clauses = list[str]
Params = list[Any]


def is_json_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and value == value  # NaN is not JSON


class Dialect:
    """How one engine writes the parts of a condition over ``memories m``."""

    mark = "?"

    def head(self, filters: Filters) -> tuple[Clauses, Params]:
        """The cube (where rows of many cubes share a table) and the statuses."""
        raise NotImplementedError

    def tag(self, tag: str) -> tuple[str, Params]:
        raise NotImplementedError

    def field(self, root: str, path: tuple[str, ...]) -> Any:
        """The parameter naming a JSON field under ``root`` (``metadata`` / ``value``)."""
        raise NotImplementedError

    def compare(self, field: Any, sql_op: str, number: float) -> tuple[str, Params]:
        raise NotImplementedError

    def member(self, field: Any, negate: bool, options: list[Any]) -> tuple[str, Params]:
        raise NotImplementedError

    def equal(self, field: Any, negate: bool, operand: Any) -> tuple[str, Params]:
        """``operand``: None (absent or JSON null), a scalar, or a list/dict."""
        raise NotImplementedError


def where(filters: Filters, now: datetime, dialect: Dialect) -> tuple[str, Params]:
    """Translate ``Filters`` into a SQL condition over ``memories m`` and its parameters."""
    mark = dialect.mark
    clauses, params = dialect.head(filters)
    for column, value in (
        ("user_id", filters.user),
        ("agent_id", filters.agent),
        ("session_id", filters.session),
        ("kind", filters.kind.value if filters.kind else None),
    ):
        if value is not None:
            clauses.append(f"m.{column} = {mark}")
            params.append(value)
    for tag in filters.tags:
        clause, values = dialect.tag(tag)
        clauses.append(clause)
        params.extend(values)
    if filters.after is not None:
        clauses.append(f"m.event_at >= {mark}")
        params.append(filters.after.timestamp())
    if filters.before is not None:
        clauses.append(f"m.event_at < {mark}")
        params.append(filters.before.timestamp())
    _match(filters.metadata, "metadata", (), dialect, clauses, params)
    if filters.namespace is not None:
        if filters.namespace:
            # Every label ends with the separator, so a prefix is a half-open string range.
            low = encode_namespace(filters.namespace)
            clauses.append(f"m.namespace >= {mark} AND m.namespace < {mark}")
            params.extend([low, low[:-1] + chr(ord(NAMESPACE_SEPARATOR) + 1)])
        else:
            clauses.append("m.namespace IS NOT NULL")
    _match(filters.value, "value", (), dialect, clauses, params)
    if not filters.include_expired:
        clauses.append(f"(m.expires_at IS NULL OR m.expires_at > {mark})")
        params.append(now.timestamp())
    return " AND ".join(clauses), params


def _match(
    match: dict[str, Any],
    root: str,
    path: tuple[str, ...],
    dialect: Dialect,
    clauses: Clauses,
    params: Params,
) -> None:
    """JSONB-style matching of a JSON field of the row: equality, nested dicts, operators."""
    for key, wanted in match.items():
        if not isinstance(key, str) or not key or '"' in key or "\\" in key:
            raise InvalidFilterError(
                f"filter key {shown(key)} must be a non-empty str without quotes"
            )
        inner = (*path, key)
        if isinstance(wanted, dict) and any(str(k).startswith("$") for k in wanted):
            for op, operand in wanted.items():
                _operator(dialect.field(root, inner), op, operand, dialect, clauses, params)
        elif isinstance(wanted, dict):
            _match(wanted, root, inner, dialect, clauses, params)
        else:
            _operator(dialect.field(root, inner), "$eq", wanted, dialect, clauses, params)


def _operator(
    field: Any, op: str, operand: Any, dialect: Dialect, clauses: Clauses, params: Params
) -> None:
    if op in COMPARISONS:
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise InvalidFilterError(f"{op} compares numbers; got {shown(operand)}")
        clause, values = dialect.compare(field, COMPARISONS[op], operand)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple) or not operand:
            raise InvalidFilterError(f"{op} takes a non-empty list, got {shown(operand)}")
        for each in operand:
            if isinstance(each, list | dict) or not is_json_scalar(each):
                raise InvalidFilterError(f"{op} takes a list of str/number/bool, got {shown(each)}")
        clause, values = dialect.member(field, op == "$nin", list(operand))
    elif op in ("$eq", "$ne"):
        if not (operand is None or isinstance(operand, list | dict) or is_json_scalar(operand)):
            raise InvalidFilterError(f"filter operand {shown(operand)} is not JSON")
        clause, values = dialect.equal(field, op == "$ne", operand)
    else:
        raise InvalidFilterError(f"unknown filter operator {shown(op)}; use one of {OPERATORS}")
    clauses.append(clause)
    params.extend(values)


class SQLite(Dialect):
    """The embedded engine: one cube a database, JSON in ``m.data`` read by ``json_extract``."""

    mark = "?"
    _extract = "json_extract(m.data, ?)"

    def head(self, filters: Filters) -> tuple[Clauses, Params]:
        marks = ", ".join("?" * len(filters.status))
        return [f"m.status IN ({marks})"], [s.value for s in filters.status]

    def tag(self, tag: str) -> tuple[str, Params]:
        return "EXISTS (SELECT 1 FROM tags t WHERE t.tag = ? AND t.id = m.id)", [tag]

    def field(self, root: str, path: tuple[str, ...]) -> str:
        return "$." + ".".join([root, *(f'"{p}"' for p in path)])

    def compare(self, field: Any, sql_op: str, number: float) -> tuple[str, Params]:
        return f"CAST({self._extract} AS REAL) {sql_op} ?", [field, number]

    def member(self, field: Any, negate: bool, options: list[Any]) -> tuple[str, Params]:
        marks = ", ".join("?" * len(options))
        x = self._extract
        if not negate:
            return f"{x} IN ({marks})", [field, *options]
        return f"({x} IS NULL OR {x} NOT IN ({marks}))", [field, field, *options]

    def equal(self, field: Any, negate: bool, operand: Any) -> tuple[str, Params]:
        rhs = "?"
        if isinstance(operand, list | dict):
            rhs, operand = "json(?)", json.dumps(operand, separators=(",", ":"))
        if negate:
            return f"{self._extract} IS NOT {rhs}", [field, operand]
        test = "IS" if operand is None else "="
        return f"{self._extract} {test} {rhs}", [field, operand]


class PostgreSQL(Dialect):
    """Rows of every cube in one table (``m.cube``), JSON in ``m.data`` as JSONB."""

    mark = "%s"
    _extract = "(m.data #> %s)"

    def __init__(self, cube: str) -> None:
        self._cube = cube

    def head(self, filters: Filters) -> tuple[Clauses, Params]:
        return ["m.cube = %s", "m.status = ANY(%s)"], [
            self._cube,
            [s.value for s in filters.status],
        ]

    def tag(self, tag: str) -> tuple[str, Params]:
        # a semi-join over the (cube, tag, id) key, not a probe per row
        return (
            "m.id IN (SELECT t.id FROM cubemem_tags t WHERE t.cube = %s AND t.tag = %s)",
            [self._cube, tag],
        )

    def field(self, root: str, path: tuple[str, ...]) -> list[str]:
        return [root, *path]

    def compare(self, field: Any, sql_op: str, number: float) -> tuple[str, Params]:
        x = self._extract
        number_of = f"(CASE WHEN jsonb_typeof{x} = 'number' THEN ({x})::text::float8 END)"
        return f"{number_of} {sql_op} %s", [field, field, number]

    def member(self, field: Any, negate: bool, options: list[Any]) -> tuple[str, Params]:
        x, values = self._extract, [jsonb(each) for each in options]
        if not negate:
            return f"{x} = ANY(%s::jsonb[])", [field, values]
        return f"({x} IS NULL OR NOT ({x} = ANY(%s::jsonb[])))", [field, field, values]

    def equal(self, field: Any, negate: bool, operand: Any) -> tuple[str, Params]:
        x = self._extract
        if operand is None:  # absent or JSON null
            test = f"({x} IS NULL OR {x} = 'null'::jsonb)"
            return (f"NOT {test}" if negate else test), [field, field]
        if negate:
            return f"({x} IS NULL OR {x} <> %s::jsonb)", [field, field, jsonb(operand)]
        return f"{x} = %s::jsonb", [field, jsonb(operand)]


def jsonb(value: Any) -> str:
    """A value as JSONB text; a bool is compared as SQLite's JSON does (1/0)."""
    if isinstance(value, bool):
        value = int(value)
    return json.dumps(value, separators=(",", ":"))
