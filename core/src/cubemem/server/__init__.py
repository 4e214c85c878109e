"""cubemem over the network: a REST API (``app``, FastAPI) and an MCP server (``mcp``), both
over one MemoryOS and its agents and grants (``cubemem.access``)."""

from cubemem.server.app import create_app

__all__ = ["create_app"]
