"""A plain ASGI app for the uvicorn test: the cube (and its worker thread) lives in the server.

POST /add (body = text) queues a memory with ``wait=False``; GET /status reports what the
worker has stored; GET /ids lists the stored ids.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cubemem import MemCube

state: dict[str, Any] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                state["cube"] = MemCube.open(os.environ["CUBEMEM_TEST_CUBE"])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                state.pop("cube").close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    cube: MemCube = state["cube"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/add":
        result: dict[str, Any] = {"id": await cube.aadd(body.decode(), wait=False)}
    elif scope["path"] == "/status":
        status = cube.scheduler.status() if cube._scheduler is not None else None
        result = {
            "stored": cube.count(),
            "done": status.done if status else 0,
            "workers": status.workers if status else 0,
        }
    else:
        result = {"ids": [item.id for item in cube.iter()]}
    payload = json.dumps(result).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})
