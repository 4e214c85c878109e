"""cubemem over the network: a REST API (``app``, FastAPI) and an MCP server (``mcp``), both
over one MemoryOS and its agents and grants (``cubemem.access``)."""

from cubemem.server.app import BackgroundServer, create_app, openapi_schema

__all__ = ["BackgroundServer", "create_app", "openapi_schema"]
