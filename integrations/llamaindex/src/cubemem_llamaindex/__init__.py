"""cubemem for LlamaIndex.

- ``MemCubeRetriever``: a ``BaseRetriever`` over hybrid search (query engines, ``RetrieverTool``)
- ``MemCubeMemoryBlock``: a long-term block for ``Memory.from_defaults(memory_blocks=[...])``
- ``MemCubeMemory``: short-term history plus recalled memories, for agents
- ``MemCubeToolSpec``: save/search/update/delete tools bound to one user
- ``CoreMemoryToolSpec``: core_memory_append/replace over the always-shown blocks
"""

from cubemem_llamaindex.memory import MemCubeMemory, MemCubeMemoryBlock
from cubemem_llamaindex.retriever import MemCubeRetriever, to_cubemem_filters, to_node
from cubemem_llamaindex.tools import CoreMemoryToolSpec, MemCubeToolSpec


def __getattr__(name: str):  # the local model needs the optional activation package
    if name == "MemCubeLocalLLM":
        from cubemem_llamaindex.local import MemCubeLocalLLM

        return MemCubeLocalLLM
    raise AttributeError(name)


__all__ = [
    "CoreMemoryToolSpec",
    "MemCubeLocalLLM",
    "MemCubeMemory",
    "MemCubeMemoryBlock",
    "MemCubeRetriever",
    "MemCubeToolSpec",
    "to_cubemem_filters",
    "to_node",
]
