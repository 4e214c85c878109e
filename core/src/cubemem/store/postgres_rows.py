"""How the PostgreSQL engine writes a memory's row and reads it back: its column values,
its JSON, vectors as pgvector text, and the change feed's rows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np

from cubemem.model import MemoryItem, encode_namespace
from cubemem.store.base import Embedding, IndexRow, filter_columns, ts, with_usage

ITEM_JSON_EXCLUDE = {"usage"}
USAGE = "coalesce(u.hits, 0), u.last_access"
JOIN_USAGE = "LEFT JOIN cubemem_usage u ON u.cube = m.cube AND u.id = m.id"


def columns(item: MemoryItem, embedding: Embedding | None) -> tuple[Any, ...]:
    return (
        *filter_columns(item),
        ts(item.event_time),
        ts(item.expires_at),
        item.version,
        embedding.digest if embedding else None,
        len(embedding.vector) if embedding else None,
        vector_text(embedding.vector) if embedding else None,
    )


def namespace(item: MemoryItem) -> str | None:
    return None if item.namespace is None else encode_namespace(item.namespace)


def to_json(item: MemoryItem) -> str:
    return item.model_dump_json(exclude=ITEM_JSON_EXCLUDE)


def json_time(value: datetime) -> str:
    from pydantic_core import to_jsonable_python

    return str(to_jsonable_python(value))


def read_item(data: Any, hits: int, last_access: float | None) -> MemoryItem:
    return with_usage(MemoryItem.model_validate(data), hits, last_access)


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.asarray(json.loads(text), dtype=np.float32)


def feed_row(row: tuple[Any, ...]) -> IndexRow:
    vector = row[-1]
    return IndexRow.from_feed(row, None if vector is None else parse_vector(vector))


INSERT_VERSION = "INSERT INTO cubemem_versions (cube, id, version, data) VALUES (%s, %s, %s, %s)"
INSERT_MEMORY = (
    "INSERT INTO cubemem_memories (cube, id, status, kind, user_id, agent_id, session_id, "
    "event_at, expires_at, version, digest, dims, vector, data, namespace, changed_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector, %s, %s, %s)"
)
KEEP_USAGE = (
    "INSERT INTO cubemem_usage (cube, id, hits, last_access) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (cube, id) DO UPDATE SET hits = EXCLUDED.hits, "
    "last_access = EXCLUDED.last_access"
)
REVISE_MEMORY = (
    "UPDATE cubemem_memories SET status = %s, kind = %s, user_id = %s, agent_id = %s, "
    "session_id = %s, event_at = %s, expires_at = %s, version = %s, "
    "digest = COALESCE(%s, digest), dims = COALESCE(%s, dims), "
    "vector = COALESCE(%s::vector, vector), data = %s, namespace = %s, changed_at = %s "
    "WHERE cube = %s AND id = %s AND version = %s"
)
EXTEND = (
    "UPDATE cubemem_memories SET expires_at = %s, data = jsonb_set(data, '{expires_at}', "
    "to_jsonb(%s::text)), changed_at = %s WHERE cube = %s AND id = %s AND version = %s "
    "AND status = 'active'"
)
TOUCH = (  # one hit per mention: an id asked twice counts twice
    "INSERT INTO cubemem_usage (cube, id, hits, last_access) "
    "SELECT %s, c.id, c.n, %s FROM (SELECT id, count(*) AS n "
    "FROM unnest(%s::text[]) AS id GROUP BY id) c "
    "JOIN cubemem_memories m ON m.cube = %s AND m.id = c.id "
    "ORDER BY c.id "  # one lock order: concurrent searches never deadlock
    "ON CONFLICT (cube, id) DO UPDATE SET hits = cubemem_usage.hits + EXCLUDED.hits, "
    "last_access = EXCLUDED.last_access"
)
FEED = (
    "SELECT m.id, m.seq, m.status, m.kind, m.user_id, m.agent_id, m.session_id, "
    "m.expires_at, m.data->'provenance'->>'source', m.data->'provenance'->>'speaker', "
    "m.data->'provenance'->>'occurred_at', m.data->>'content', m.data->>'context', "
    "m.data->>'valid_from', m.data->>'valid_to', m.data->'provenance'->>'created_at', "
    "m.data->'metadata'->>'subject', m.data->'metadata'->>'relation', "
    "m.data->'metadata'->>'object', m.vector::text FROM cubemem_memories m "
    "WHERE m.cube = %s AND m.changed_at > %s ORDER BY m.seq"
)
