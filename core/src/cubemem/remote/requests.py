"""Each cube operation as the request that runs it on a ``cubemem serve`` server.

``request(base, operation)`` is the one table from ``cubemem.cube.operations`` to HTTP: the
remote cube's sync and async runners send what it returns, and
``tests/shared/test_surfaces.py`` checks that every operation has an entry here and a route
on the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from cubemem import errors
from cubemem.access import AuditEntry
from cubemem.cube import operations as op
from cubemem.model import MemoryItem, SearchResult
from cubemem.model.governance import Forgotten
from cubemem.model.graph import Entity, Neighbourhood, Relation
from cubemem.remote.transport import (
    Call,
    content_json,
    filters_json,
    message_json,
    scope_json,
    segment,
    time_json,
)

_ITEMS = TypeAdapter(list[MemoryItem])
_RESULTS = TypeAdapter(list[SearchResult])
_AUDIT = TypeAdapter(list[AuditEntry])
_ENTITIES = TypeAdapter(list[Entity])
_RELATIONS = TypeAdapter(list[Relation])
Builder = Callable[[str, Any], Call]
REQUESTS: op.Table[Builder] = op.Table("a remote cube")


def request(base: str, operation: op.Operation[Any]) -> Call:
    """The request that runs ``operation`` on the cube at ``base`` (``/v1/cubes/NAME``)."""
    return REQUESTS.of(operation)(base, operation)


def _tags(tags: Any) -> Any:
    return None if tags is None else list(tags)


def _written(path: str, body: dict[str, Any], single: bool, o: Any) -> Call:
    wait = o.wait

    def parse(data: Any) -> Any:
        if wait:
            items = _ITEMS.validate_python(data["items"])
            return items[0] if single else items
        return data["ids"][0] if single else data["ids"]

    return Call(
        "POST",
        path,
        json={**body, "wait": wait},
        headers={"Idempotency-Key": o.idempotency_key or uuid.uuid4().hex},
        parse=parse,
    )


@REQUESTS.runs(op.Add)
def _add(base: str, o: op.Add) -> Call:
    single = o.single
    body = {
        "content": content_json(o.content if single else list(o.content)),
        "scope": scope_json(o.scope),
        "tags": _tags(o.tags),
        "metadata": o.metadata,
        "valid_from": time_json(o.valid_from),
        "valid_to": time_json(o.valid_to),
    }
    return _written(f"{base}/memories", body, single, o)


@REQUESTS.runs(op.AddMessages)
def _add_messages(base: str, o: op.AddMessages) -> Call:
    messages = o.messages
    if isinstance(messages, str | dict) or not isinstance(messages, list | tuple):
        raise errors.InvalidInputError("messages must be a list of messages")
    body = {
        "messages": [message_json(m) for m in messages],
        "session": o.session,
        "timestamp": time_json(o.timestamp),
        "scope": scope_json(o.scope),
        "tags": _tags(o.tags),
        "metadata": o.metadata,
    }
    return _written(f"{base}/messages", body, False, o)


@REQUESTS.runs(op.Update)
def _update(base: str, o: op.Update) -> Call:
    return Call(
        "PATCH",
        f"{base}/memories/{segment(o.id)}",
        json={
            "content": o.content,
            "tags": _tags(o.tags),
            "metadata": o.metadata,
            "scope": scope_json(o.scope),
            "expires_at": time_json(o.expires_at),
            "expected_version": o.expected_version,
            "valid_from": time_json(o.valid_from),
        },
        safe=o.expected_version is not None,  # a versioned write cannot apply twice
        parse=MemoryItem.model_validate,
    )


@REQUESTS.runs(op.Forget)
def _forget(base: str, o: op.Forget) -> Call:
    body = o.parameters() | {
        "ids": None if o.ids is None else list(o.ids),
        "filters": None if o.filters is None else filters_json(o.filters),
    }
    return Call(
        "POST", f"{base}/forget", json=body, safe=o.ids is None, parse=Forgotten.model_validate
    )


@REQUESTS.runs(op.Invalidate)
def _invalidate(base: str, o: op.Invalidate) -> Call:
    return Call(
        "POST",
        f"{base}/memories/{segment(o.id)}/invalidate",
        json={"at": time_json(o.at), "expected_version": o.expected_version},
        safe=o.expected_version is not None,
        parse=MemoryItem.model_validate,
    )


@REQUESTS.runs(op.Delete)
def _delete(base: str, o: op.Delete) -> Call:
    params: dict[str, Any] = {"purge": o.purge}
    if o.expected_version is not None:
        params["expected_version"] = o.expected_version
    return Call(
        "DELETE",
        f"{base}/memories/{segment(o.id)}",
        params=params,
        parse=lambda data: None if data is None else MemoryItem.model_validate(data),
    )


@REQUESTS.runs(op.Restore)
def _restore(base: str, o: op.Restore) -> Call:
    params = {} if o.expected_version is None else {"expected_version": o.expected_version}
    return Call(
        "POST",
        f"{base}/memories/{segment(o.id)}/restore",
        params=params,
        parse=MemoryItem.model_validate,
    )


@REQUESTS.runs(op.Put)
def _put(base: str, o: op.Put) -> Call:
    if isinstance(o.namespace, str):
        raise errors.InvalidInputError("namespace must be a tuple of str labels")
    return Call(
        "PUT",
        f"{base}/keys",
        json={
            "namespace": list(o.namespace),
            "key": o.key,
            "content": o.content,
            "value": o.value,
            "scope": scope_json(o.scope),
            "tags": _tags(o.tags),
            "metadata": o.metadata,
            "ttl_s": None if o.ttl is None else o.ttl.total_seconds(),
        },
        parse=MemoryItem.model_validate,
    )


@REQUESTS.runs(op.Refresh)
def _refresh(base: str, o: op.Refresh) -> Call:
    return Call(
        "POST", f"{base}/keys/refresh", json={"ids": list(o.ids)}, parse=_ITEMS.validate_python
    )


@REQUESTS.runs(op.Wait)
def _wait(base: str, o: op.Wait) -> Call:
    return Call(
        "POST",
        f"{base}/wait",
        json={"ids": list(o.ids), "timeout_s": min(max(o.timeout, 0.001), 60.0)},
        parse=lambda data: bool(data["done"]),
    )


@REQUESTS.runs(op.Search)
def _search(base: str, o: op.Search) -> Call:
    return Call(
        "POST",
        f"{base}/search",
        json={
            "query": o.query,
            "k": o.k,
            "filters": filters_json(o.filters),
            "min_score": o.min_score,
            "include_superseded": o.include_superseded,
            "as_of": time_json(o.as_of),
            "known_at": time_json(o.known_at),
        },
        parse=lambda data: _RESULTS.validate_python(data["results"]),
    )


@REQUESTS.runs(op.Entities, op.Relations, op.Neighbourhood)
def _graph(base: str, o: op.Entities | op.Relations | op.Neighbourhood) -> Call:
    body = o.parameters() | {"filters": filters_json(o.filters), "as_of": time_json(o.as_of)}
    parse: Callable[[Any], Any]
    if isinstance(o, op.Entities):
        parse = _ENTITIES.validate_python
    elif isinstance(o, op.Relations):
        parse = _RELATIONS.validate_python
    else:
        parse = Neighbourhood.model_validate
    return Call("POST", f"{base}/{o.method}", json=body, parse=parse)


@REQUESTS.runs(op.MergeEntities, op.SplitEntity)
def _resolve(base: str, o: op.MergeEntities | op.SplitEntity) -> Call:
    if isinstance(o, op.MergeEntities):
        return Call(
            "POST", f"{base}/entities/merge", json=o.parameters(), parse=Entity.model_validate
        )
    return Call(
        "POST", f"{base}/entities/split", json=o.parameters(), parse=_ENTITIES.validate_python
    )


@REQUESTS.runs(op.Get)
def _get(base: str, o: op.Get) -> Call:
    return Call("GET", f"{base}/memories/{segment(o.id)}", parse=MemoryItem.model_validate)


@REQUESTS.runs(op.History)
def _history(base: str, o: op.History) -> Call:
    return Call("GET", f"{base}/memories/{segment(o.id)}/history", parse=_ITEMS.validate_python)


@REQUESTS.runs(op.List)
def _list(base: str, o: op.List) -> Call:
    return Call(
        "POST",
        f"{base}/memories/list",
        json={"filters": filters_json(o.filters), "limit": o.limit, "offset": o.offset},
        parse=lambda data: _ITEMS.validate_python(data["items"]),
    )


@REQUESTS.runs(op.Count)
def _count(base: str, o: op.Count) -> Call:
    return Call(
        "POST",
        f"{base}/count",
        json={"filters": filters_json(o.filters)},
        parse=lambda data: int(data["count"]),
    )


@REQUESTS.runs(op.Lookup)
def _lookup(base: str, o: op.Lookup) -> Call:
    def parse(data: Any) -> MemoryItem | None:
        return None if data["item"] is None else MemoryItem.model_validate(data["item"])

    return Call(
        "POST",
        f"{base}/keys/lookup",
        json={"namespace": list(o.namespace), "key": o.key},
        parse=parse,
    )


@REQUESTS.runs(op.Namespaces)
def _namespaces(base: str, o: op.Namespaces) -> Call:
    return Call(
        "POST",
        f"{base}/keys/namespaces",
        json={"prefix": list(o.prefix), "filters": filters_json(o.filters)},
        parse=lambda data: [tuple(n) for n in data],
    )


@REQUESTS.runs(op.Stats)
def _stats(base: str, o: op.Stats) -> Call:
    return Call("GET", f"{base}/stats")


@REQUESTS.runs(op.Quarantined)
def _quarantined(base: str, o: op.Quarantined) -> Call:
    return Call(
        "GET",
        f"{base}/quarantine",
        params={"limit": o.limit, "offset": o.offset},
        parse=lambda data: _ITEMS.validate_python(data["items"]),
    )


@REQUESTS.runs(op.Approve, op.Reject)
def _review(base: str, o: op.Approve | op.Reject) -> Call:
    return Call(
        "POST",
        f"{base}/memories/{segment(o.id)}/{o.method}",
        safe=False,
        parse=MemoryItem.model_validate,
    )


@REQUESTS.runs(op.Audit)
def _audit(base: str, o: op.Audit) -> Call:
    params: dict[str, Any] = {"limit": o.limit, "offset": o.offset}
    if o.memory_id is not None:
        params["memory_id"] = o.memory_id
    return Call("GET", f"{base}/audit", params=params, parse=_AUDIT.validate_python)


@REQUESTS.runs(op.SearchCubes)
def _search_cubes(base: str, o: op.SearchCubes) -> Call:
    s = o.search
    return Call(
        "POST",
        "/v1/search",
        json={
            "query": s.query,
            "cubes": None if o.cubes is None else list(o.cubes),
            "k": s.k,
            "filters": filters_json(s.filters),
            "min_score": s.min_score,
            "include_superseded": s.include_superseded,
            "as_of": time_json(s.as_of),
            "known_at": time_json(s.known_at),
        },
        parse=lambda data: _RESULTS.validate_python(data["results"]),
    )
