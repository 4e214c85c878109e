"""The one policy decision, enumerated over the operation table: every operation that changes
what other agents can see, run by a low-trust agent under every kind of grant scope, leaves
what another agent reads unchanged until an admin approves it — and once approved, the change
is there. An operation added to the table that writes has to be listed here, or this fails."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cubemem import MemoryOS, PermissionDeniedError, Status
from cubemem.cube import operations as op

Target = dict[str, Any]
BUILDERS: dict[type[op.Operation[Any]], Callable[[Target], op.Operation[Any]]] = {
    op.Add: lambda t: op.Add(content="The office opens at 6", scope=t["scope"], wait=True),
    op.AddMessages: lambda t: op.AddMessages(
        messages=[{"speaker": "Ana", "content": "The office opens at 6"}],
        scope=t["scope"],
        session="s1",
        wait=True,
    ),
    op.Update: lambda t: op.Update(id=t["id"], content="The office opens at 6"),
    op.Delete: lambda t: op.Delete(id=t["id"]),
    op.Restore: lambda t: op.Restore(id=t["deleted"]),
    op.Invalidate: lambda t: op.Invalidate(id=t["id"], at=datetime.now(UTC) + timedelta(days=1)),
    op.Put: lambda t: op.Put(
        namespace=("ops",), key="hours", content="The office opens at 6", scope=t["scope"]
    ),
}
WRITES = [kind for kind in op.CUBE_OPERATIONS if kind.right == "write"]
ADMIN = [kind for kind in op.CUBE_OPERATIONS if kind.right == "admin"]
SCOPES = [None, {"user": "ana"}, {"agent": "intern"}]


def test_every_write_operation_is_enumerated():
    assert sorted(k.__name__ for k in WRITES) == sorted(k.__name__ for k in BUILDERS)
    assert sorted(k.__name__ for k in ADMIN) == ["Forget", "MergeEntities", "SplitEntity"]


def test_an_admin_operation_is_refused_to_a_writer_and_changes_nothing(tmp_path, embedder):
    with MemoryOS(tmp_path / "m", embedder=embedder) as os_:
        os_.create_cube("team")
        os_.access.create_agent("intern", trust=0.9)
        os_.access.grant("intern", "team", "write")
        local = os_.open_cube("team")
        local.add("Mel and Melanie Smith met Ben")
        before = [(e.id, e.merged_from) for e in local.entities()]
        intern = os_.as_agent("intern").open_cube("team")
        for operation in (
            op.MergeEntities(source="Mel", target="Melanie Smith"),
            op.SplitEntity(entity="Mel"),
            op.Forget(user="ana"),
            op.Forget(ids=[local.list()[0].id]),
        ):
            with pytest.raises(PermissionDeniedError, match="admin"):
                intern.run(operation)
        assert [(e.id, e.merged_from) for e in local.entities()] == before
        assert local.count() == 1


def _reader_sees(reader: Any) -> list[tuple[Any, ...]]:
    shown = reader.list({"status": ["active", "deleted", "archived"]}, limit=1000)
    keyed = reader.lookup(("ops",), "hours")
    rows = [*shown, *([keyed] if keyed else [])]
    return sorted(
        (i.id, i.version, i.content, i.status.value, i.scope, i.expires_at, tuple(i.tags))
        for i in rows
    )


def _examples(n: int):
    slow = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
    return settings(max_examples=n, deadline=None, suppress_health_check=slow)


@_examples(30)
@given(
    kind=st.sampled_from(WRITES),
    trust=st.sampled_from([0.0, 0.2, 0.49]),
    scope=st.sampled_from(SCOPES),
)
def test_no_low_trust_write_is_seen_before_approval(tmp_path, embedder, kind, trust, scope):
    with MemoryOS(tmp_path / uuid.uuid4().hex, embedder=embedder) as os_:
        os_.create_cube("team")
        for name, level, right, fence in (
            ("intern", trust, "write", scope),
            ("lead", 0.9, "admin", None),
            ("reader", 0.9, "read", None),
        ):
            os_.access.create_agent(name, trust=level)
            os_.access.grant(name, "team", right, scope=fence)
        lead = os_.as_agent("lead").open_cube("team")
        reader = os_.as_agent("reader").open_cube("team")
        intern = os_.as_agent("intern").open_cube("team")
        written = {"user": "ana", "agent": "intern"}  # within each of the intern's scopes
        fact = lead.add("The office opens at 9", scope=written)
        gone = lead.add("The office used to open at 8", scope=written)
        lead.delete(gone.id)
        lead.put(("ops",), "hours", "The office opens at 9", scope=written)
        before = _reader_sees(reader)
        target = {"id": fact.id, "deleted": gone.id, "scope": written}
        result = intern.run(BUILDERS[kind](target))
        assert _reader_sees(reader) == before, f"{kind.__name__} by trust {trust} was seen"
        held = [r for r in (result if isinstance(result, list) else [result]) if r is not None]
        assert held and all(r.status is Status.QUARANTINED for r in held)
        for item in held:
            lead.approve(item.id)
        assert _reader_sees(reader) != before, f"the approved {kind.__name__} is not there"


@pytest.mark.parametrize("kind", [op.Update, op.Delete, op.Restore, op.Put])
def test_a_trusted_writer_changes_at_once(tmp_path, embedder, kind):
    with MemoryOS(tmp_path / "m", embedder=embedder) as os_:
        os_.create_cube("team")
        for name, right in (("writer", "write"), ("reader", "read")):
            os_.access.create_agent(name, trust=0.9)
            os_.access.grant(name, "team", right)
        writer = os_.as_agent("writer").open_cube("team")
        reader = os_.as_agent("reader").open_cube("team")
        fact = writer.add("The office opens at 9")
        gone = writer.add("The office used to open at 8")
        writer.delete(gone.id)
        writer.put(("ops",), "hours", "The office opens at 9", ttl=timedelta(days=1))
        before = _reader_sees(reader)
        result = writer.run(BUILDERS[kind]({"id": fact.id, "deleted": gone.id, "scope": None}))
        assert result is None or result.status is not Status.QUARANTINED
        assert _reader_sees(reader) != before
