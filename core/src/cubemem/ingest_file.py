"""Reading a conversation file for ``cubemem ingest``: every message checked before any write.

Formats: JSON (a list of messages, or ``{"sessions": [{"session", "timestamp", "messages"}]}``)
and JSON Lines (``.jsonl`` / ``.ndjson``: one message per line, a ``"session"`` key groups
lines). Errors name the file and the line (JSON Lines) or the message (JSON) that is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cubemem.errors import InvalidInputError
from cubemem.model import Message, validate_content
from cubemem.settings import Settings

LINE_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)


def ingest_plan(
    file: Path, session: str | None = None, timestamp: str | None = None
) -> list[dict[str, Any]]:
    """The file's sessions as ``{"session", "timestamp", "messages"}`` with each message
    normalised to ``{"speaker", "text", "id"?, "timestamp"?, "metadata"?}``; raises
    ``InvalidInputError`` naming the first bad line/message, having written nothing."""
    suffix = file.suffix.lower()
    if suffix not in (*LINE_SUFFIXES, *JSON_SUFFIXES):
        raise InvalidInputError(
            f"{file}: unknown file type {file.suffix!r}; ingest reads .json, .jsonl and .ndjson"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {file}: {exc}") from None
    limit = Settings().max_content_bytes
    if suffix in LINE_SUFFIXES:
        return _lines(file, text, session, timestamp, limit)
    return _document(file, text, session, timestamp, limit)


def _lines(
    file: Path, text: str, session: str | None, timestamp: str | None, limit: int
) -> list[dict[str, Any]]:
    groups: dict[str | None, dict[str, Any]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"{where}: not valid JSON ({exc.msg}, column {exc.colno})"
            raise InvalidInputError(message) from None
        _place(groups, record, where, session, timestamp, limit)
    out = list(groups.values())
    _unique_ids(out, file)
    return out


def _place(
    groups: dict[str | None, dict[str, Any]],
    record: Any,
    where: str,
    session: str | None,
    timestamp: str | None,
    limit: int,
) -> None:
    """One message record into its session's group (its own "session" key, else the default)."""
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where}: expected a JSON object (one message each)")
    record = dict(record)
    name = record.pop("session", session)
    if name is not None and not isinstance(name, str):
        raise InvalidInputError(f'{where}: "session" must be a string, got {name!r}')
    _group(groups, name, timestamp).append(_message(record, where, limit))


def _group(
    groups: dict[str | None, dict[str, Any]], name: str | None, timestamp: str | None
) -> list[dict[str, Any]]:
    """The messages of session ``name`` (lines of one session need not be adjacent)."""
    if name not in groups:
        groups[name] = {"session": name, "timestamp": timestamp, "messages": []}
    messages: list[dict[str, Any]] = groups[name]["messages"]
    return messages


def _document(
    file: Path, text: str, session: str | None, timestamp: str | None, limit: int
) -> list[dict[str, Any]]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{file}, line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})"
        ) from None
    if isinstance(records, dict) and isinstance(records.get("sessions"), list):
        groups = []
        for i, s in enumerate(records["sessions"], start=1):
            where = f"{file}, session {i}"
            if not isinstance(s, dict) or not isinstance(s.get("messages", []), list):
                raise InvalidInputError(f"{where}: expected {{'session', 'messages': [...]}}")
            messages = [
                _message(m, f"{where}, message {j}", limit)
                for j, m in enumerate(s.get("messages", []), start=1)
            ]
            groups.append(
                {
                    "session": s.get("session", session),
                    "timestamp": s.get("timestamp", timestamp),
                    "messages": messages,
                }
            )
        _unique_ids(groups, file)
        return groups
    if not isinstance(records, list):
        raise InvalidInputError(
            f"{file} must hold a list of messages or {{'sessions': [...]}}; for one message per "
            "line name it .jsonl or .ndjson"
        )
    by_session: dict[str | None, dict[str, Any]] = {}
    for i, record in enumerate(records, start=1):
        _place(by_session, record, f"{file}, message {i}", session, timestamp, limit)
    out = list(by_session.values())
    _unique_ids(out, file)
    return out


def _message(record: Any, where: str, limit: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where}: expected a JSON object")
    try:
        message = Message.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "message"
        field = {"content": "text", "speaker": "speaker (or role)"}.get(field, field)
        raise InvalidInputError(f"{where}: {field}: {err['msg']}") from None
    try:
        validate_content(message.content, limit, "message text")
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    if message.id is not None and not message.id.strip():
        raise InvalidInputError(f'{where}: "id" is empty; give a message id or leave it out')
    out: dict[str, Any] = {"speaker": message.speaker, "text": message.content}
    if message.id is not None:
        out["id"] = message.id
    if message.timestamp is not None:
        out["timestamp"] = message.timestamp
    if message.metadata:
        out["metadata"] = message.metadata
    return out


def _unique_ids(groups: list[dict[str, Any]], file: Path) -> None:
    """A message id may appear once per session (it is how a re-run finds the message)."""
    for group in groups:
        seen: set[str] = set()
        for message in group["messages"]:
            id_ = message.get("id")
            if id_ is None:
                continue
            if id_ in seen:
                raise InvalidInputError(
                    f"{file}: message id {id_!r} appears twice in session {group['session']!r}"
                )
            seen.add(id_)
