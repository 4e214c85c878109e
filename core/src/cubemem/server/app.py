"""The REST API: ``create_app(os)`` is a FastAPI app over one MemoryOS.

Every route but ``/health`` needs ``Authorization: Bearer <key>`` (an agent's API key): no key
or an unknown one is 401, a known agent without the right is 403. Calls run as that agent
(``MemoryOS.authenticate`` → ``cubemem.shared``), so the server decides nothing the library
does not. Errors are JSON ``{"error": {"type", "message", "ids"}}`` with the status of their
type (``CubememError.http_status``); request bodies over ``max_body_bytes`` are 413 before
they are read.

Writes (``POST .../memories``, ``.../messages``) are acknowledged once durable: queued in the
scheduler's queue (202 with the new ids) unless ``wait=true`` asks for them stored and
searchable (201). An ``Idempotency-Key`` header makes a retried write store nothing twice.

The routes live in ``cubemem.server.routes`` (one router per tag), the request models in
``bodies``, the shared dependencies and error handling in ``plumbing``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from cubemem import __version__, errors
from cubemem.os import MemoryOS
from cubemem.server.bodies import MAX_BODY_BYTES
from cubemem.server.headers import Headers
from cubemem.server.plumbing import Allowance, BodyLimit, install_error_handlers
from cubemem.server.routes import ROUTERS
from cubemem.server.routes.service import Readiness
from cubemem.server.ui import install_ui
from cubemem.settings import Settings


def create_app(
    os_: MemoryOS,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    title: str = "cubemem",
) -> FastAPI:
    """The REST API over ``os_`` (which the caller owns and closes)."""
    # the docs pages' assets come from this server (fastapi-offline), not a CDN: /docs works offline
    app = FastAPIOffline(
        title=title,
        version=__version__,
        description="Shared memory for LLM agents: cubes of versioned memories with hybrid "
        "search, per-agent grants, quarantine and audit. Authenticate with "
        "`Authorization: Bearer <agent key>`.",
    )
    settings = os_.settings if os_ is not None else Settings()
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, timeout_s=settings.request_timeout_s)
    app.add_middleware(Headers)  # relative redirects; the inspector's page headers
    app.state.os = os_
    app.state.allowance = Allowance(settings.rate_limit_per_minute, settings.max_waits_per_agent)
    app.state.readiness = Readiness()  # ``cubemem serve`` replaces it while it warms up
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_ui(app)  # the web inspector at /ui (cubemem.server.ui)
    return app


class BackgroundServer:
    """The REST API served from a thread of this process, for tests and notebooks::

        with BackgroundServer(os_) as url:
            client = RemoteMemoryOS(url, api_key)

    ``port=0`` picks a free port. Production runs ``cubemem serve`` (its own process).
    """

    def __init__(self, os_: MemoryOS, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._server = uvicorn.Server(
            uvicorn.Config(create_app(os_), host=host, port=port, log_level="warning")
        )
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> str:
        self._thread = threading.Thread(target=self._server.run, name="cubemem-server")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise errors.BackendUnavailableError("the background server did not start")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI document (what ``/openapi.json`` serves; committed as
    ``docs/openapi.json``). Routes only reach the MemoryOS when called, so none is needed."""
    return create_app(cast(MemoryOS, None)).openapi()
