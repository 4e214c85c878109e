"""The write layer: operations on one cube's ``Context``, called by the facade and the workers.

- ``context``: the ``Context`` (store, embedder, retriever, settings, clock, hooks)
- ``inputs``: argument checks that raise ``InvalidInputError`` before anything is written
- ``write``: new memories, versioned revisions, status changes, purge
- ``keyed``: put / lookup / refresh / namespaces (the key-value view)
- ``read``: search (usage and working memory), pages, counts
- ``consolidate``: near-duplicate merging and its undo
- ``lifecycle``: expiry and decay to the archive
- ``followup``: extraction and consolidation after a write (tasks or inline)
- ``working``: per agent/session hot sets with change hooks

Layers import downwards only: model → store/embed → retrieve → ops → scheduler → cube/os →
cli, tools, adapters (see docs/architecture.md).
"""

from cubemem.ops.context import ContentLike, Context, Extractor

__all__ = ["ContentLike", "Context", "Extractor"]
