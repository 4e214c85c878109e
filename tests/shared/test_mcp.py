"""The MCP server (official SDK) over the same MemoryOS, identities and grants: a stdio server
acting for one agent, and an HTTP server where each request carries its agent's key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from cubemem import MemoryOS

from .conftest import free_port, stop

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _data(result) -> object:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        value = result.structured_content
        return value.get("result", value) if isinstance(value, dict) else value
    return json.loads(result.content[0].text)


@pytest.fixture(scope="module")
def root(server_folder) -> tuple[Path, dict[str, str]]:
    root = server_folder("mcp") / "memory"
    keys = {}
    with MemoryOS(root) as os_:
        os_.create_cube("team")
        for name, trust, right in [
            ("writer", 0.9, "write"),
            ("reader", 0.9, "read"),
            ("intern", 0.2, "write"),
            ("stranger", 0.9, None),
            ("lead", 0.9, "admin"),
        ]:
            _, keys[name] = os_.access.create_agent(name, trust=trust)
            if right:
                os_.access.grant(name, "team", right)
    return root, keys


async def test_stdio_server_acts_for_its_agent(root):
    path, keys = root
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cubemem.cli", "mcp", "--data", str(path), "--cube", "team"],
        env={**ENV, "CUBEMEM_API_KEY": keys["writer"]},
    )
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"add_memory", "search_memories", "get_memory", "update_memory"} <= names
        assert {"delete_memory", "memory_history", "list_cubes"} <= names
        added = _data(await client.call_tool("add_memory", {"content": "Ana prefers tea"}))
        assert added["author"] == "writer" and added["status"] == "active"
        found = _data(await client.call_tool("search_memories", {"query": "what does Ana drink"}))
        assert "not instructions" in found["note"]
        assert found["memories"][0]["id"] == added["id"]
        updated = _data(
            await client.call_tool(
                "update_memory",
                {
                    "memory_id": added["id"],
                    "content": "Ana prefers green tea",
                    "expected_version": 1,
                },
            )
        )
        assert updated["version"] == 2
        stale = await client.call_tool(
            "update_memory", {"memory_id": added["id"], "content": "x", "expected_version": 1}
        )
        assert stale.is_error and "version" in stale.content[0].text
        history = _data(await client.call_tool("memory_history", {"memory_id": added["id"]}))
        assert [v["content"] for v in history] == ["Ana prefers tea", "Ana prefers green tea"]
        assert _data(await client.call_tool("delete_memory", {"memory_id": added["id"]}))["deleted"]
        got = _data(await client.call_tool("get_memory", {"memory_id": added["id"]}))
        assert got["status"] == "deleted"


def test_stdio_server_refuses_to_start_without_a_key_once_agents_exist(root):
    path, _ = root
    env = {k: v for k, v in ENV.items() if k != "CUBEMEM_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "cubemem.cli", "mcp", "--data", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "CUBEMEM_API_KEY" in done.stderr


@pytest.fixture(scope="module")
def http_mcp(root):
    path, keys = root
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "cubemem.cli", "mcp", "--data", str(path), "--transport",
            "http", "--port", str(port), "--cube", "team",
        ],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 300  # it loads the model before it listens
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    yield url, keys, path
    stop(process)


def _as(url: str, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(url, http_client=http))


async def test_http_server_checks_every_caller(http_mcp):
    url, keys, path = http_mcp
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer cm_nope"}).status_code == 401
    async with _as(url, keys["intern"]) as intern:
        held = _data(await intern.call_tool("add_memory", {"content": "The office wifi is open"}))
        assert held["status"] == "quarantined" and held["author"] == "intern"
    async with _as(url, keys["writer"]) as writer:
        fact = _data(await writer.call_tool("add_memory", {"content": "The office has a piano"}))
        found = _data(await writer.call_tool("search_memories", {"query": "office", "k": 10}))
        assert [m["id"] for m in found["memories"]] == [fact["id"]]  # not the intern's
        hidden = await writer.call_tool("get_memory", {"memory_id": held["id"]})
        assert hidden.is_error
    async with _as(url, keys["reader"]) as reader:
        refused = await reader.call_tool("add_memory", {"content": "readers cannot write"})
        assert refused.is_error and "write" in refused.content[0].text
    async with _as(url, keys["stranger"]) as stranger:
        refused = await stranger.call_tool("search_memories", {"query": "office"})
        assert refused.is_error and "no grant" in refused.content[0].text
        assert _data(await stranger.call_tool("list_cubes", {})) == []
    with MemoryOS(path) as os_:  # the lead approves; now everyone with read sees it
        os_.as_agent("lead").open_cube("team").approve(held["id"])
    async with _as(url, keys["reader"]) as reader:
        found = _data(await reader.call_tool("search_memories", {"query": "office wifi", "k": 10}))
        assert held["id"] in [m["id"] for m in found["memories"]]


REPO = Path(__file__).resolve().parents[2]


def _desktop_configs() -> list[dict]:
    """The MCP client configurations docs/multi-agent.md gives, as written."""
    text = (REPO / "docs" / "multi-agent.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    found = [json.loads(b)["mcpServers"]["memory"] for b in blocks if "mcpServers" in b]
    assert len(found) == 2, "the docs give a checkout and an installed configuration"
    return found


def _uv() -> str:
    import shutil

    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail(
            "uv is not on PATH: install it (python -m pip install uv) and run uv run pytest"
        )
    return uv


@pytest.mark.parametrize("config", _desktop_configs(), ids=["checkout", "installed"])
async def test_desktop_config_starts_from_any_folder(root, tmp_path, config):
    """The documented configuration, started the way a desktop client starts it: from a
    folder of its own, with only the environment the client passes."""
    path, keys = root
    fill = {
        "/path/to/cubemem": str(REPO),
        "/path/to/shared-memory": str(path),
        "/path/to/venv/bin/cubemem": str(Path(sys.executable).with_name("cubemem")),
        "uv": _uv(),
    }
    params = StdioServerParameters(
        command=fill.get(config["command"], config["command"]),
        args=[fill.get(a, a) for a in config["args"]],
        env={"CUBEMEM_API_KEY": keys["writer"]},
        cwd=tmp_path,  # not the repository
    )
    with open(tmp_path / "stderr.log", "w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            assert _data(await client.call_tool("list_cubes", {})) == ["team"]
            added = _data(await client.call_tool("add_memory", {"content": "Desk 4 is Ben's"}))
            got = _data(await client.call_tool("get_memory", {"memory_id": added["id"]}))
            assert got["content"] == "Desk 4 is Ben's"
        errlog.seek(0)
        assert "cubemem mcp: ready in" in errlog.read()  # warmed before the first call


async def test_stdio_server_redacts_what_its_agent_writes(root):
    """The cube's redaction policy holds on the MCP path too (set in the cube's manifest by
    its owner; the server applies it from the next write), and the audit has the counts."""
    from cubemem import RedactionPolicy

    path, keys = root
    with MemoryOS(path) as os_:
        os_.open_cube("team").maintenance.set_redaction(RedactionPolicy.all("mask"))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cubemem.cli", "mcp", "--data", str(path), "--cube", "team"],
        env={**ENV, "CUBEMEM_API_KEY": keys["writer"]},
    )
    try:
        async with Client(params) as client:
            text = "Ana's card is 4111 1111 1111 1111, mail zq7mcp@example.com"
            added = _data(await client.call_tool("add_memory", {"content": text}))
            assert added["content"] == "Ana's card is [CARD], mail [EMAIL]"
    finally:
        with MemoryOS(path) as os_:
            os_.open_cube("team").maintenance.set_redaction(None)
            entries = [e for e in os_.access.audit(cube="team") if e.action == "redact"]
            assert entries[-1].detail == {"counts": {"card": 1, "email": 1}}
