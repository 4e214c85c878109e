"""The remote client: a MemoryOS on a ``cubemem serve`` server with the surface of the local
classes (``RemoteMemoryOS``, ``RemoteCube``); see ``cubemem.remote.client``."""

from cubemem.remote.client import RemoteCube, RemoteMemoryOS
from cubemem.remote.transport import DEFAULT_TIMEOUT_S

__all__ = ["DEFAULT_TIMEOUT_S", "RemoteCube", "RemoteMemoryOS"]
