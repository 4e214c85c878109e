"""What an agent's writes and reviews do (``AgentCube.run`` dispatches here): each runs on the
local cube acting for the agent, fenced to its grant's scope, and is audited. A change the
policy holds (``cubemem.ops.write.held``) comes back as the proposal that waits, and is
audited as ``propose.<action>`` on the memory it would change."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cubemem import access
from cubemem.access import Grant
from cubemem.cube import operations as op
from cubemem.errors import PermissionDeniedError
from cubemem.model import MemoryItem, Scope, address_id
from cubemem.ops import inputs, review, write
from cubemem.shared.view import HANDLERS, AgentCube


def _changed(cube: AgentCube, action: str, id: str, result: Any) -> None:
    """Audit ``action`` on memory ``id``: done (on it, or on the successor a change of fact
    made), or held as a proposal."""
    if isinstance(result, MemoryItem) and result.id != id and write.proposal_of(result):
        cube._access.record(
            cube.agent.name,
            f"propose.{action}",
            cube.name,
            memory_id=id,
            detail={"proposal": result.id},
        )
    elif isinstance(result, MemoryItem):
        cube._audit_items(action, [result])


@HANDLERS.runs(op.Add, op.AddMessages)
def _add(cube: AgentCube, o: op.Add | op.AddMessages, grant: Grant) -> Any:
    result = cube.cube.run(replace(o, idempotency_key=cube._key(o.idempotency_key)))
    cube._audit_items("add", result if isinstance(result, list) else [result])
    return result


@HANDLERS.runs(op.Update)
def _update(cube: AgentCube, o: op.Update, grant: Grant) -> MemoryItem:
    scope = o.scope
    if scope is not None:
        scope = access.fit_scope(inputs.scope(scope), grant.scope)
    _, new = cube._on_visible(
        o.id,
        grant,
        o.expected_version,
        lambda version: cube.cube.run(replace(o, scope=scope, expected_version=version)),
    )
    _changed(cube, "update", o.id, new)
    return new


@HANDLERS.runs(op.Invalidate)
def _invalidate(cube: AgentCube, o: op.Invalidate, grant: Grant) -> MemoryItem:
    _, item = _as_seen(cube, o, grant)
    _changed(cube, "invalidate", o.id, item)
    return item


def _as_seen(
    cube: AgentCube, o: op.Delete | op.Restore | op.Invalidate, grant: Grant
) -> tuple[MemoryItem, Any]:
    """Run ``o`` on a memory the agent may see, at the version it saw (``on_visible``)."""

    def change(version: int) -> Any:
        again: op.Operation[Any] = replace(o, expected_version=version)
        return cube.cube.run(again)

    return cube._on_visible(o.id, grant, o.expected_version, change)


@HANDLERS.runs(op.Delete)
def _delete(cube: AgentCube, o: op.Delete, grant: Grant) -> MemoryItem | None:
    current, held = _as_seen(cube, o, grant)
    if held is not None:
        _changed(cube, "delete", o.id, held)
        return held
    cube._access.record(
        cube.agent.name,
        "purge" if o.purge else "delete",
        cube.name,
        memory_id=o.id,
        version=None if o.purge else current.version + 1,
    )
    return None


@HANDLERS.runs(op.Restore)
def _restore(cube: AgentCube, o: op.Restore, grant: Grant) -> MemoryItem:
    _, item = _as_seen(cube, o, grant)
    _changed(cube, "restore", o.id, item)
    return item


@HANDLERS.runs(op.Put)
def _put(cube: AgentCube, o: op.Put, grant: Grant) -> MemoryItem:
    current = cube.cube.lookup(o.namespace, o.key)
    if current is not None and not cube._sees(current, grant):
        raise PermissionDeniedError(
            f"key {o.key!r} holds a memory outside agent {cube.agent.name!r}'s scope"
        )
    scope = o.scope
    if scope is not None:
        scope = access.fit_scope(inputs.scope(scope), grant.scope)
    item = cube.cube.run(replace(o, scope=scope))
    _changed(cube, "put", address_id(inputs.namespace(o.namespace), inputs.key(o.key)), item)
    return item


@HANDLERS.runs(op.Refresh)
def _refresh(cube: AgentCube, o: op.Refresh, grant: Grant) -> list[MemoryItem]:
    stored = cube.cube.maintenance.store.get(inputs.memory_ids(o.ids))
    wanted = [item.id for item in stored if cube._sees(item, grant)]
    return cube.cube.refresh(wanted)


@HANDLERS.runs(op.Wait)
def _wait(cube: AgentCube, o: op.Wait, grant: Grant) -> bool:
    ids = inputs.memory_ids(o.ids)
    stored = cube.cube.maintenance.store.get(ids)
    if not all(cube._sees(item, grant) for item in stored):
        return False  # an id this agent may not see is never reported done
    return cube.cube.run(replace(o, ids=ids))


# -- review -----------------------------------------------------------------------------------
@HANDLERS.runs(op.Quarantined)
def _quarantined(cube: AgentCube, o: op.Quarantined, grant: Grant) -> list[MemoryItem]:
    """What waits for review within the admin's scope."""
    wanted = cube._filters({"status": "quarantined"}, grant)
    return cube.cube.list(wanted, limit=o.limit, offset=o.offset)


def _reviewable(cube: AgentCube, id: str, grant: Grant) -> MemoryItem:
    """The held memory ``id``, when it and what it would change lie in the admin's scope."""
    item = cube._visible(inputs.memory_id(id), grant)
    record = write.proposal_of(item)
    if record is not None:
        cube._visible(str(record["target"]), grant)
        scope = record["changes"].get("scope")
        if scope is not None and not access.in_scope(Scope(**scope), grant.scope):
            raise PermissionDeniedError(
                f"the change {id} moves memory {record['target']} outside agent "
                f"{cube.agent.name!r}'s scope; an admin of the whole cube reviews it"
            )
    return item


@HANDLERS.runs(op.Approve)
def _approve(cube: AgentCube, o: op.Approve, grant: Grant) -> MemoryItem:
    _reviewable(cube, o.id, grant)
    item = review.approve(cube.cube.maintenance.context, o.id, by=cube.agent.name)
    cube._audit_items("approve", [item] if item.id == o.id else [item, o.id])
    return item


@HANDLERS.runs(op.Reject)
def _reject(cube: AgentCube, o: op.Reject, grant: Grant) -> MemoryItem:
    _reviewable(cube, o.id, grant)
    item = review.reject(cube.cube.maintenance.context, o.id, by=cube.agent.name)
    cube._audit_items("reject", [item])
    return item


@HANDLERS.runs(op.MergeEntities, op.SplitEntity)
def _resolve(cube: AgentCube, o: op.MergeEntities | op.SplitEntity, grant: Grant) -> Any:
    """Entity merges and splits (cube admins): run as the agent, audited. A scoped admin finds
    only the entities of the memories its grant covers (any other is "not found")."""
    operation: op.Operation[Any] = o
    if grant.scope is not None:
        operation = replace(o, fence=cube._filters(None, grant))
    result = cube.cube.run(operation)
    entities = result if isinstance(result, list) else [result]
    cube._access.record(
        cube.agent.name, o.method, cube.name, detail={"entities": [e.id for e in entities]}
    )
    return result


@HANDLERS.runs(op.Forget)
def _forget(cube: AgentCube, o: op.Forget, grant: Grant) -> Any:
    """Forget (cube admins), within the grant's scope; audited by ids and count."""
    if o.ids is not None:
        for id_ in inputs.memory_ids(o.ids):
            cube._visible(id_, grant)  # another scope's memory is "not found"
    narrowed = o
    if grant.scope is not None and (o.user or o.agent or o.session or o.filters is not None):
        fitted = access.fit_scope(Scope(user=o.user, agent=o.agent, session=o.session), grant.scope)
        narrowed = replace(o, user=fitted.user, agent=fitted.agent, session=fitted.session)
    if grant.scope is not None:  # the changes of fact and derived memories it follows, too
        narrowed = replace(narrowed, fence=cube._filters(None, grant))
    forgotten = cube.cube.run(narrowed)
    cube._access.record(
        cube.agent.name,
        "forget",
        cube.name,
        detail={"count": forgotten.count, "ids": forgotten.ids, "derived": forgotten.derived},
    )
    return forgotten
