"""The MCP tools of the entity graph (``cubemem.server.mcp.build_mcp`` adds them): who and
what the memories mention, and how those are related."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer

from cubemem.cube import BaseCube

TOOLS = {
    "entities": "find_entities",
    "relations": "entity_relations",
    "neighbourhood": "entity_neighbourhood",
    "merge_entities": "merge_entities",
    "split_entity": "split_entity",
}


def add_graph_tools(
    server: MCPServer, cube: Callable[[str | None], BaseCube], told: Callable[[Any], Any]
) -> None:
    @server.tool()
    @told
    def find_entities(
        query: str | None = None,
        cube_name: str | None = None,
        user: str | None = None,
        as_of: str | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """People, places, organisations and things the memories mention whose names hold
        the words of ``query`` (all of them without one), the most mentioned first."""
        filters = {"user": user} if user else None
        found = cube(cube_name).entities(query, filters=filters, as_of=as_of, limit=limit)
        return [e.model_dump(mode="json") for e in found]

    @server.tool()
    @told
    def entity_relations(
        entity: str,
        cube_name: str | None = None,
        user: str | None = None,
        as_of: str | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """How an entity (a name, or an id from find_entities) is related to others, each
        relation citing the memories it comes from."""
        filters = {"user": user} if user else None
        found = cube(cube_name).relations(entity, filters=filters, as_of=as_of, limit=limit)
        return [r.model_dump(mode="json") for r in found]

    @server.tool()
    @told
    def entity_neighbourhood(
        entity: str,
        hops: int = 2,
        cube_name: str | None = None,
        user: str | None = None,
        as_of: str | None = None,
    ) -> dict[str, Any]:
        """An entity, the entities within ``hops`` relations of it and those relations: for
        questions that join facts ("which of Ana's friends lives in the city she moved to?")."""
        filters = {"user": user} if user else None
        around = cube(cube_name).neighbourhood(entity, hops=hops, filters=filters, as_of=as_of)
        return around.model_dump(mode="json")

    @server.tool()
    @told
    def merge_entities(source: str, target: str, cube_name: str | None = None) -> dict[str, Any]:
        """Resolve one entity as another from now on ("Mel" is "Melanie"; cube admins).
        split_entity undoes it."""
        return cube(cube_name).merge_entities(source, target).model_dump(mode="json")

    @server.tool()
    @told
    def split_entity(entity: str, cube_name: str | None = None) -> list[dict[str, Any]]:
        """Undo merges of an entity (cube admins)."""
        return [e.model_dump(mode="json") for e in cube(cube_name).split_entity(entity)]
