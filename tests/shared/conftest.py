"""A real ``cubemem serve`` process on loopback for the shared-memory tests, and helpers to
give each test its own cube and agents on it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cubemem import MemoryOS
from cubemem.remote import RemoteMemoryOS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    root: Path
    admin_key: str
    process: subprocess.Popen[bytes]

    def admin(self) -> RemoteMemoryOS:
        return RemoteMemoryOS(self.url, self.admin_key)


def start_server(
    root: Path, *, port: int | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``cubemem serve`` on ``root`` in a child process (``env``: extra environment, e.g.
    ``CUBEMEM_STORE_URL``); returns it once /ready answers 200 (warmed up)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root.parent / f"serve-{port}.log", "wb")  # noqa: SIM115 (lives with the process)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "cubemem.cli", "serve", "--data", str(root),
            "--port", str(port), "--log-level", "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})},
    )  # fmt: skip
    deadline = time.monotonic() + 300  # it listens at once and loads the model meanwhile
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"cubemem serve exited: {(root.parent / f'serve-{port}.log').read_text()}"
            )
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("cubemem serve was not ready within 300 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def server(server_folder) -> Iterator[Server]:
    root = server_folder("served") / "memory"
    with MemoryOS(root) as os_:  # the operator exists before the server starts
        _, key = os_.access.create_agent("admin", trust=1.0, operator=True)
    process, url = start_server(root)
    yield Server(url=url, root=root, admin_key=key, process=process)
    stop(process)


@dataclass
class Team:
    """A fresh cube on the server, with an admin client and helpers to add agents."""

    server: Server
    cube: str
    admin: RemoteMemoryOS

    def agent(
        self, right: str | None, *, trust: float = 0.9, name: str | None = None
    ) -> RemoteMemoryOS:
        agent, key = self.admin.create_agent(name or f"a{uuid.uuid4().hex[:10]}", trust=trust)
        if right is not None:
            self.admin.grant(agent.name, self.cube, right)
        return RemoteMemoryOS(self.server.url, key)


@pytest.fixture
def team(server) -> Iterator[Team]:
    admin = server.admin()
    name = f"c{uuid.uuid4().hex[:10]}"
    admin.create_cube(name)
    yield Team(server=server, cube=name, admin=admin)
    admin.close()
