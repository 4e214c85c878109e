"""The MCP tool that forgets (``cubemem.server.mcp.build_mcp`` adds it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer

from cubemem.cube import BaseCube

TOOLS = {"forget": "forget_memories"}


def add_governance_tools(
    server: MCPServer, cube: Callable[[str | None], BaseCube], told: Callable[[Any], Any]
) -> None:
    @server.tool()
    @told
    def forget_memories(
        memory_ids: list[str] | None = None,
        user: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        cube_name: str | None = None,
    ) -> dict[str, Any]:
        """Erase memories for good (cube admins): these ids, or everything of a user, agent
        or session, with the facts and summaries derived from them. Answers the ids and the
        count, never the content."""
        gone = cube(cube_name).forget(memory_ids, user=user, agent=agent, session=session)
        return gone.model_dump(mode="json") | {"count": gone.count}
