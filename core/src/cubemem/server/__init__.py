"""cubemem over the network: a REST API (``app``, FastAPI) and an MCP server (``mcp``), both
over one MemoryOS and its agents and grants (``cubemem.access``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cubemem.server.app import BackgroundServer, create_app, openapi_schema

__all__ = ["BackgroundServer", "create_app", "openapi_schema"]


def __getattr__(name: str) -> Any:
    """FastAPI loads with the first of these names used, not with ``cubemem.server`` (whose
    ``commands`` module every ``cubemem`` command imports)."""
    if name in __all__:
        from cubemem.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'cubemem.server' has no attribute {name!r}")
