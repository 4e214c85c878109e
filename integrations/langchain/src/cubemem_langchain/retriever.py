"""``MemCubeRetriever``: cubemem's hybrid search as a LangChain ``BaseRetriever``."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from cubemem import Filters, MemCube, SearchResult


class MemCubeRetriever(BaseRetriever):
    """Retrieve memories as ``Document``s (``id`` = memory id; score and provenance in metadata).

    ```python
    retriever = MemCubeRetriever(cube=cube, k=5, filters={"user": "ana"})
    docs = retriever.invoke("what does Ana drink?")
    docs = retriever.invoke("what does Ana drink?", k=2, filters={"tags": ["food"]})
    ```
    ``filters`` takes cubemem's filters (user, agent, session, tags, after, before, metadata,
    ...); per-call ``filters`` replace the constructor's.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cube: MemCube
    k: int = Field(4, ge=1)
    filters: dict[str, Any] | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: dict[str, Any] | Filters | None = None,
    ) -> list[Document]:
        results = self.cube.search(query, k=k or self.k, filters=filters or self.filters)
        return [to_document(r) for r in results]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: dict[str, Any] | Filters | None = None,
    ) -> list[Document]:
        results = await self.cube.asearch(query, k=k or self.k, filters=filters or self.filters)
        return [to_document(r) for r in results]


def to_document(result: SearchResult) -> Document:
    """A search result as a ``Document`` whose metadata is plain JSON."""
    item = result.item
    return Document(
        id=item.id,
        page_content=item.content,
        metadata={
            "score": result.score,
            "dense_score": result.dense_score,
            "lexical_score": result.lexical_score,
            "scope": item.scope.model_dump(mode="json"),
            "provenance": item.provenance.model_dump(mode="json"),
            "version": item.version,
            "tags": list(item.tags),
            "metadata": dict(item.metadata),
            "created_at": item.provenance.created_at.isoformat(),
            "cube": item.cube,
        },
    )
