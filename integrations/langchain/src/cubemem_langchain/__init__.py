"""cubemem for LangChain 1.x and LangGraph.

- ``MemCubeStore``: a LangGraph ``BaseStore`` (``create_agent(..., store=MemCubeStore(cube))``)
- ``MemCubeMiddleware``: recall into the system prompt, capture after each turn
- ``create_memory_tools``: save/search/update/delete tools bound to one user
- ``create_core_memory_tools``: core_memory_append/replace over the always-shown blocks
- ``MemCubeRetriever``: a ``BaseRetriever`` over hybrid search
"""

from cubemem_langchain.middleware import MemCubeMiddleware
from cubemem_langchain.retriever import MemCubeRetriever, to_document
from cubemem_langchain.store import USER_FIRST, USER_SECOND, MemCubeStore
from cubemem_langchain.tools import create_core_memory_tools, create_memory_tools


def __getattr__(name: str):  # the local model needs the optional activation package
    if name == "MemCubeLocalChatModel":
        from cubemem_langchain.local import MemCubeLocalChatModel

        return MemCubeLocalChatModel
    raise AttributeError(name)


__all__ = [
    "USER_FIRST",
    "USER_SECOND",
    "MemCubeLocalChatModel",
    "MemCubeMiddleware",
    "MemCubeRetriever",
    "MemCubeStore",
    "create_core_memory_tools",
    "create_memory_tools",
    "to_document",
]
