"""A MemoryOS on a ``cubemem serve`` server, with the surface of the local classes.

```python
with RemoteMemoryOS("http://127.0.0.1:8765", api_key=key) as memory:
    cube = memory.open_cube("team")
    cube.add("Ana prefers tea")
    cube.search("what does Ana drink?")
```

``RemoteCube`` is a runner of the cube surface (``cubemem.cube.SharedCube``): every
operation becomes the request ``cubemem.remote.requests`` builds for it, sent by
``httpx.Client`` (``run``) or ``httpx.AsyncClient`` (``arun``, so the async twins do real
async I/O). Errors come back as the same
``cubemem.errors`` types (401 is ``AuthenticationError``).

Retries (``tenacity``): a request that never reached the server (connect errors) is always
retried; one whose answer was lost (timeouts, dropped connections, 502/503/504, 429 after its
``Retry-After``) only when repeating it is harmless — reads, and writes carrying an
idempotency key. Every ``add``/``add_messages`` carries one (a fresh UUID unless given), so a
retried write never stores twice.
"""

from __future__ import annotations

import builtins
import time
from typing import Any, TypeVar, cast

import httpx

from cubemem.access import Agent, Grant
from cubemem.cube import SharedCube
from cubemem.cube import operations as op
from cubemem.cube.across import CubeSet
from cubemem.cube.runner import threaded
from cubemem.manifest import Manifest
from cubemem.remote.requests import request
from cubemem.remote.transport import DEFAULT_TIMEOUT_S, Call, Transport, scope_json, segment

R = TypeVar("R")
_WAIT_BATCH = 1000
"""Most ids one ``wait`` request carries (the server's batch limit)."""


class RemoteCube(SharedCube):
    """A cube on a cubemem server, used as the agent whose key the client holds."""

    def __init__(self, transport: Transport, manifest: Manifest) -> None:
        self._t = transport
        self._manifest = manifest
        self._base = f"/v1/cubes/{manifest.name}"

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def __repr__(self) -> str:
        return f"RemoteCube(name={self.name!r}, url={self._t.url!r})"

    def run(self, operation: op.Operation[R]) -> R:
        """Send ``operation`` to the server and read its answer."""
        if isinstance(operation, op.Wait) and len(operation.ids) > _WAIT_BATCH:
            return self._wait_in_batches(operation)  # type: ignore[return-value]
        return self._t.send(request(self._base, operation))

    async def arun(self, operation: op.Operation[R]) -> R:
        if isinstance(operation, op.Wait) and len(operation.ids) > _WAIT_BATCH:
            return await super().arun(cast(op.Operation[R], operation))
        return await self._t.asend(request(self._base, operation))

    def _wait_in_batches(self, operation: op.Wait) -> bool:
        deadline = time.monotonic() + operation.timeout
        ids = list(operation.ids)
        for start in range(0, len(ids), _WAIT_BATCH):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            batch = op.Wait(ids=ids[start : start + _WAIT_BATCH], timeout=left)
            if not self._t.send(request(self._base, batch)):
                return False
        return True


class RemoteMemoryOS(CubeSet):
    """The MemoryOS served at ``url``, as the agent holding ``api_key``."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._t = Transport(url, api_key, timeout=timeout, retries=retries, transport=transport)

    def __repr__(self) -> str:
        return f"RemoteMemoryOS(url={self._t.url!r})"

    def __enter__(self) -> RemoteMemoryOS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RemoteMemoryOS:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self) -> None:
        self._t.close()

    async def aclose(self) -> None:
        await self._t.aclose()

    def run(self, operation: op.Operation[R]) -> R:
        """The one operation a MemoryOS runs itself, ``SearchCubes``, in one request (the
        server merges)."""
        return self._t.send(request("", operation))

    async def arun(self, operation: op.Operation[R]) -> R:
        return await self._t.asend(request("", operation))

    def me(self) -> Agent:
        """The agent this client acts as."""
        return self._t.send(Call("GET", "/v1/me", parse=Agent.model_validate))

    def list_cubes(self) -> builtins.list[str]:
        return self._t.send(
            Call("GET", "/v1/cubes", parse=lambda data: [c["manifest"]["name"] for c in data])
        )

    def open_cube(self, name: str) -> RemoteCube:
        manifest = self._t.send(
            Call(
                "GET",
                f"/v1/cubes/{segment(name)}",
                parse=lambda data: Manifest.model_validate(data["manifest"]),
            )
        )
        return RemoteCube(self._t, manifest)

    def create_cube(self, name: str) -> RemoteCube:
        manifest = self._t.send(
            Call(
                "POST",
                "/v1/cubes",
                json={"name": name},
                safe=False,
                parse=lambda data: Manifest.model_validate(data["manifest"]),
            )
        )
        return RemoteCube(self._t, manifest)

    # -- administration (operators and cube admins) ---------------------------------------
    def create_agent(
        self, name: str, *, trust: float = 0.5, operator: bool = False
    ) -> tuple[Agent, str]:
        """A new agent and its key (operators)."""
        return self._t.send(
            Call(
                "POST",
                "/v1/agents",
                json={"name": name, "trust": trust, "operator": operator},
                safe=False,
                parse=lambda data: (Agent.model_validate(data["agent"]), data["key"]),
            )
        )

    def grant(self, agent: str, cube: str, right: str, *, scope: Any = None) -> Grant:
        """Give ``agent`` a right on ``cube`` (cube admins)."""
        return self._t.send(
            Call(
                "PUT",
                f"/v1/cubes/{segment(cube)}/grants/{segment(agent)}",
                json={"right": right, "scope": scope_json(scope)},
                parse=Grant.model_validate,
            )
        )

    def revoke(self, agent: str, cube: str) -> None:
        self._t.send(Call("DELETE", f"/v1/cubes/{segment(cube)}/grants/{segment(agent)}"))

    def set_policy(self, cube: str, *, trust_threshold: float) -> None:
        self._t.send(
            Call(
                "PUT",
                f"/v1/cubes/{segment(cube)}/policy",
                json={"trust_threshold": trust_threshold},
            )
        )

    # -- async twins (the sync client in a worker thread; cube operations use real async I/O)
    ame = threaded(me)
    alist_cubes = threaded(list_cubes)
    aopen_cube = threaded(open_cube)
    acreate_cube = threaded(create_cube)
    acreate_agent = threaded(create_agent)
    agrant = threaded(grant)
    arevoke = threaded(revoke)
    aset_policy = threaded(set_policy)
