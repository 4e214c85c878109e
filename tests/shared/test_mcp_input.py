"""Issue 43, item 15: an MCP tool refuses what REST refuses (a NaN ``min_score``)."""

from __future__ import annotations

import pytest
from mcp.client import Client

from cubemem import MemoryOS
from cubemem.server.mcp import build_mcp


async def test_search_memories_refuses_a_nan_min_score(tmp_path, embedder):
    with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
        os_.create_cube("team")
        _, key = os_.access.create_agent("lead", trust=0.9)
        os_.access.grant("lead", "team", "admin")
        server = build_mcp(os_, key=key, default_cube="team")
        async with Client(server) as client:
            await client.call_tool("add_memory", {"content": "Ana prefers tea"})
            for bad in ("NaN", "Infinity", -0.5, 1.5):
                answer = await client.call_tool(
                    "search_memories", {"query": "tea", "min_score": bad}
                )
                assert answer.is_error, (bad, answer.content)
                assert "min_score" in answer.content[0].text
        # a raw NaN token (JSON-RPC parsers take it) reaches the tool as a float NaN
        with pytest.raises(Exception, match="min_score"):
            await server.call_tool("search_memories", {"query": "tea", "min_score": float("nan")})
