"""One table of operations, every surface checked against it: an operation in
``cubemem.cube.operations`` that a runner (local, agent, remote), the REST API or the MCP
server lacks fails here. Then every MCP tool runs once, as an admin agent, in process."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from mcp.client import Client
from starlette.routing import Match

from cubemem import MemoryOS
from cubemem.cube import BaseCube, SharedCube
from cubemem.cube import local as local_cube
from cubemem.cube import operations as op
from cubemem.remote.requests import REQUESTS, request
from cubemem.server.app import openapi_schema
from cubemem.server.mcp import TOOLS, build_mcp
from cubemem.shared import HANDLERS as AGENT_HANDLERS

from .test_mcp import _data

ALL = (*op.CUBE_OPERATIONS, *op.REVIEW_OPERATIONS)

SAMPLE: dict[str, object] = {
    "content": "Ana prefers tea",
    "messages": [{"speaker": "Ana", "content": "hi"}],
    "id": "m1",
    "ids": ["m1"],
    "namespace": ("notes",),
    "key": "k",
    "query": "tea",
    "entity": "Ana",
    "source": "Ana",
    "target": "Ana Souza",
}


def _sample(kind: type[op.Operation[object]]) -> op.Operation[object]:
    required = {
        f.name: SAMPLE[f.name]
        for f in dataclasses.fields(kind)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return kind(**required)


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.__name__)
def test_every_operation_has_a_method_and_a_runner_on_every_cube(kind):
    owner = BaseCube if kind in op.CUBE_OPERATIONS else SharedCube
    method = getattr(owner, kind.method, None)
    assert callable(method), f"BaseCube lacks {kind.method}"
    if kind.method != "wait":  # ``await`` is a keyword
        assert callable(getattr(owner, f"a{kind.method}", None)), f"no a{kind.method}"
    if kind in op.CUBE_OPERATIONS:
        assert kind in local_cube.HANDLERS, f"MemCube does not run {kind.__name__}"
    assert kind in AGENT_HANDLERS, f"AgentCube does not run {kind.__name__}"
    assert kind in REQUESTS, f"RemoteCube has no request for {kind.__name__}"


@pytest.mark.parametrize("kind", [*ALL, op.SearchCubes], ids=lambda k: k.__name__)
def test_every_operation_request_has_a_route_on_the_server(kind):
    from cubemem.server.app import create_app

    app = create_app(typing.cast(MemoryOS, None))
    if kind is op.SearchCubes:
        call = request("", op.SearchCubes(search=op.Search(query="tea")))
    else:
        call = request("/v1/cubes/team", _sample(kind))
    scope = {"type": "http", "path": call.path, "method": call.method}
    matched = [r for r in app.routes if r.matches(scope)[0] is Match.FULL]
    assert matched, f"{kind.__name__}: no route for {call.method} {call.path}"


def test_every_operation_has_an_mcp_tool_and_the_openapi_schema_names_the_routes():
    assert set(TOOLS) == {k.method for k in ALL}
    paths = openapi_schema()["paths"]
    assert "/v1/cubes/{name}/stats" in paths and "/v1/search" in paths


async def test_every_mcp_tool_runs(tmp_path, embedder):
    with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
        os_.create_cube("team")
        _, key = os_.access.create_agent("lead", trust=0.9)
        os_.access.grant("lead", "team", "admin")
        _, low_key = os_.access.create_agent("intern", trust=0.1)
        os_.access.grant("intern", "team", "write")
        server = build_mcp(os_, key=key, default_cube="team")
        async with Client(server) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert set(TOOLS.values()) <= tools, set(TOOLS.values()) - tools
            call = client.call_tool
            added = _data(await call("add_memory", {"content": "Ana prefers tea", "user": "ana"}))
            turns = _data(
                await call(
                    "add_messages",
                    {"messages": [{"speaker": "Ana", "content": "I moved to Lisbon"}]},
                )
            )
            assert len(turns) == 1
            assert _data(await call("wait_for_memories", {"ids": [added["id"]]})) is True
            hits = _data(await call("search_memories", {"query": "what does Ana drink"}))
            assert hits["memories"][0]["id"] == added["id"]
            assert _data(await call("get_memory", {"memory_id": added["id"]}))["version"] == 1
            new = _data(
                await call("update_memory", {"memory_id": added["id"], "content": "green tea"})
            )
            assert new["version"] == 2
            assert len(_data(await call("memory_history", {"memory_id": added["id"]}))) == 2
            assert _data(await call("delete_memory", {"memory_id": added["id"]}))["deleted"]
            assert (
                _data(await call("restore_memory", {"memory_id": added["id"]}))["status"]
                == "active"
            )
            moved = _data(
                await call(
                    "update_memory",
                    {"memory_id": added["id"], "content": "coffee", "valid_from": "2030-01-01"},
                )
            )
            assert moved["id"] != added["id"] and moved["valid_from"].startswith("2030-01-01")
            then = _data(
                await call("search_memories", {"query": "Ana drinks", "as_of": "2029-06-01"})
            )
            assert added["id"] in [m["id"] for m in then["memories"]]
            ended = _data(
                await call("invalidate_memory", {"memory_id": moved["id"], "at": "2031-01-01"})
            )
            assert ended["valid_to"].startswith("2031-01-01")
            assert _data(await call("count_memories", {})) == 2  # the superseded not counted
            found = _data(await call("find_entities", {"query": "Lisbon"}))
            assert [e["name"] for e in found] == ["Lisbon"] and found[0]["kind"] == "place"
            related = _data(await call("entity_relations", {"entity": "Lisbon"}))
            assert [r["target"]["name"] for r in related] == ["Ana"]
            around = _data(await call("entity_neighbourhood", {"entity": "Ana", "hops": 1}))
            assert {e["name"] for e in around["entities"]} == {"Ana", "Lisbon"}
            merged = _data(await call("merge_entities", {"source": "Lisbon", "target": "Ana"}))
            assert merged["merged_from"] == [found[0]["id"]]
            split = _data(await call("split_entity", {"entity": "Ana"}))
            assert {e["name"] for e in split} == {"Ana", "Lisbon"}
            assert len(_data(await call("list_memories", {"user": "ana"}))) == 1
            assert _data(await call("cube_stats", {}))["memories"] == 3
            put = _data(await call("put_memory", {"namespace": ["n"], "key": "k", "content": "x"}))
            assert (
                _data(await call("lookup_memory", {"namespace": ["n"], "key": "k"}))["id"]
                == (put["id"])
            )
            assert _data(await call("list_namespaces", {})) == [["n"]]
            assert _data(await call("refresh_memories", {"ids": [put["id"]]})) == []
            held = os_.authenticate(low_key).open_cube("team").add("Ana hates tea")
            assert held.status.value == "quarantined"
            waiting = _data(await call("quarantined_memories", {}))
            assert [m["id"] for m in waiting] == [held.id]
            assert _data(await call("approve_memory", {"memory_id": held.id}))["status"] == "active"
            other = os_.authenticate(low_key).open_cube("team").add("Ana hates coffee")
            assert (
                _data(await call("reject_memory", {"memory_id": other.id}))["status"] == "deleted"
            )
            log = _data(await call("audit_log", {"memory_id": held.id}))
            assert {e["action"] for e in log} >= {"add", "approve"}
