"""``MemCubeRetriever``: cubemem's hybrid search as a LangChain ``BaseRetriever``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from cubemem import Filters, InvalidInputError, SearchResult
from cubemem.cube import CubeLike
from cubemem.cube.operations import Search
from cubemem.ops.read import check_min_score


class MemCubeRetriever(BaseRetriever):
    """Retrieve memories as ``Document``s (``id`` = memory id; score and provenance in metadata).

    ```python
    retriever = MemCubeRetriever(cube=cube, k=5, filters={"user": "ana"})
    docs = retriever.invoke("what does Ana drink?")
    docs = retriever.invoke("what does Ana drink?", k=2, filters={"tags": ["food"]})
    docs = retriever.invoke("where does Ana live?", as_of="2021-05-01")
    ```

    ``filters`` takes cubemem's filters (user, agent, session, tags, after, before, metadata,
    ...). They bind the retriever: per-call ``filters`` *narrow* them (AND) and can never widen
    them — the call above searches Ana's memories tagged "food", and a call asking for another
    user raises ``InvalidFilterError``. ``min_score`` (0 to 1) drops results whose
    ``relevance`` is lower. Any other keyword (``search_kwargs``, ``filter``, ...) raises
    ``TypeError`` naming the accepted ones, rather than being ignored.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cube: CubeLike
    k: int = Field(4, ge=1)
    filters: dict[str, Any] | Filters | None = None
    min_score: float | None = Field(None, ge=0.0, le=1.0)

    def __init__(self, **data: Any) -> None:
        # checked before pydantic, whose validators would wrap these errors in its own
        unknown = sorted(set(data) - set(type(self).model_fields))
        if unknown:
            raise TypeError(
                f"MemCubeRetriever got unexpected argument(s) {unknown}; it takes "
                f"{', '.join(CONSTRUCTOR_ARGS)} (filters are cubemem filters, e.g. "
                '{"user": "ana", "tags": ["food"]})'
            )
        if data.get("filters") is not None:
            data["filters"] = Filters.parse(data["filters"])
        if data.get("min_score") is not None:
            check_min_score(data["min_score"])
        super().__init__(**data)

    def _search(
        self,
        query: str,
        k: int | None = None,
        filters: dict[str, Any] | Filters | None = None,
        min_score: float | None = None,
        as_of: datetime | str | None = None,
        known_at: datetime | str | None = None,
        **kwargs: Any,
    ) -> Search:
        """The search a call asks for: per-call ``k``, ``filters`` (narrowing the bound ones),
        ``min_score``, and the moments ``as_of`` (what was true then) and ``known_at`` (what
        the cube held then); any other keyword is refused."""
        _refuse(kwargs)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InvalidInputError(f"k must be a positive int, got {k!r}")
        return Search(
            query=query,
            k=k or self.k,
            filters=Filters.parse(self.filters).narrow(filters),
            min_score=self.min_score if min_score is None else min_score,
            as_of=as_of,
            known_at=known_at,
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return [to_document(r) for r in self.cube.run(self._search(query, **kwargs))]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return [to_document(r) for r in await self.cube.arun(self._search(query, **kwargs))]


CONSTRUCTOR_ARGS = ("cube", "k", "filters", "min_score", "tags", "metadata", "name")
CALL_ARGS = ("k", "filters", "min_score", "as_of", "known_at")
_RUNNABLE_KWARGS = {"verbose"}  # BaseRetriever.invoke reads it and passes it on


def _refuse(kwargs: dict[str, Any]) -> None:
    unknown = sorted(set(kwargs) - _RUNNABLE_KWARGS)
    if unknown:
        raise TypeError(
            f"MemCubeRetriever.invoke got unexpected argument(s) {unknown}; it takes "
            f"{', '.join(CALL_ARGS)} (filters are cubemem filters that narrow the retriever's, "
            'e.g. filters={"tags": ["food"]})'
        )


def to_document(result: SearchResult) -> Document:
    """A search result as a ``Document`` whose metadata is plain JSON."""
    item = result.item
    return Document(
        id=item.id,
        page_content=item.content,
        metadata={
            "score": result.score,
            "relevance": result.relevance,
            "dense_score": result.dense_score,
            "lexical_score": result.lexical_score,
            "scope": item.scope.model_dump(mode="json"),
            "provenance": item.provenance.model_dump(mode="json"),
            "version": item.version,
            "tags": list(item.tags),
            "metadata": dict(item.metadata),
            "created_at": item.provenance.created_at.isoformat(),
            "valid_from": item.valid_since.isoformat(),
            "valid_to": None if item.valid_to is None else item.valid_to.isoformat(),
            "cube": item.cube,
        },
    )
