"""Reliability with real processes: kill -9 during background ingestion, many writer processes
through Redis and through SQLite, and a worker living inside a uvicorn server."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from cubemem import MemCube, Settings

pytestmark = pytest.mark.slow  # multi-process: minutes; CI runs them (README command)

HERE = Path(__file__).resolve().parent
CHILD = HERE / "scheduler_child.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def acks(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        if line.startswith("ACK ") and line.endswith("\n"):  # only whole lines were acked
            _, id_, text = line.rstrip("\n").split(" ", 2)
            found[id_] = text
    return found


def verify(cube: MemCube, acked: dict[str, str], sample: int, rng: random.Random) -> None:
    """Every acknowledged id is stored once, whole and indexed; samples are found by search."""
    assert cube.scheduler.wait(timeout=600), "the queue did not drain"
    assert cube.scheduler.status().failed == []
    items = {i.id: i for i in cube.iter()}
    missing = [i for i in acked if i not in items]
    assert not missing, f"{len(missing)} acknowledged ids lost, e.g. {missing[:3]}"
    texts = [i.content for i in items.values()]
    assert len(texts) == len(set(texts)), "an item was stored twice"
    assert all(items[i].content == t for i, t in acked.items())
    # nothing half-written: every row has its vector, and the index holds exactly the rows
    store = cube.maintenance.store
    store.sync_index()
    found, _ = store.vectors(list(items))
    assert set(found) == set(items)
    assert store._index.collection.count() == len(items)
    for id_ in rng.sample(sorted(acked), min(sample, len(acked))):
        hits = [r.id for r in cube.search(acked[id_], k=3)]
        assert hits.count(id_) == 1, (acked[id_], hits)


def test_kill_9_during_background_ingest_loses_no_acknowledged_write(tmp_path, embedder):
    """4 rounds; each child acknowledges up to 300 new items and is killed at a random moment
    (while acknowledging, while its worker embeds and writes, or after)."""
    rng = random.Random(7)
    path = tmp_path / "cube"
    MemCube.create(path, embedder=embedder).close()
    acked: dict[str, str] = {}
    for round_ in range(4):
        child = spawn(str(path), "sqlite", "crash", str(round_ * 300), "300", "1")
        assert child.stdout.readline() == "READY\n", child.stderr.read()
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda c=child, out=lines: out.extend(iter(c.stdout.readline, ""))
        )
        reader.start()
        # killed once it has acknowledged a random share (150-300) of its items, so the test
        # does not depend on how fast this machine writes; then at a random moment after that
        wanted, deadline = rng.randint(150, 300), time.monotonic() + 120
        while len(acks(list(lines))) < wanted and child.poll() is None:
            assert time.monotonic() < deadline, "the child acknowledged nothing for two minutes"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        reader.join()
        child.stderr.close()
        acked.update(acks(lines))
        with MemCube.open(path, embedder=embedder) as cube:  # resumes the queue it finds
            verify(cube, acked, sample=10, rng=rng)
            assert cube.count() <= len(acked) + round_ + 1  # at most one unacked batch a round
    assert len(acked) >= 600  # 4 rounds of at least 150 acknowledged each


def run_writers(path: Path, queue: str, processes: int, each: int) -> dict[str, str]:
    children = [
        spawn(str(path), queue, f"w{p}", "0", str(each), "25", "--wait") for p in range(processes)
    ]
    acked: dict[str, str] = {}
    for child in children:
        out, err = child.communicate(timeout=900)
        assert child.returncode == 0, err[-3000:]
        assert "database is locked" not in err
        assert out.rstrip().endswith("DONE")
        acked.update(acks(out.splitlines(keepends=True)))
    assert len(acked) == processes * each
    return acked


def test_four_processes_write_through_redis(tmp_path, embedder, redis_url):
    path = tmp_path / "cube"
    MemCube.create(path, embedder=embedder, settings=Settings(queue_url=redis_url)).close()
    acked = run_writers(path, redis_url, processes=4, each=100)
    with MemCube.open(path, embedder=embedder, settings=Settings(queue_url=redis_url)) as cube:
        assert cube.count() == 400
        verify(cube, acked, sample=20, rng=random.Random(1))


def test_three_processes_write_through_the_sqlite_queue(tmp_path, embedder):
    path = tmp_path / "cube"
    MemCube.create(path, embedder=embedder).close()
    acked = run_writers(path, "sqlite", processes=3, each=100)
    with MemCube.open(path, embedder=embedder) as cube:
        assert cube.count() == 300
        verify(cube, acked, sample=20, rng=random.Random(2))


@pytest.fixture
def uvicorn_server(tmp_path, embedder):
    path = tmp_path / "cube"
    MemCube.create(path, embedder=embedder).close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "asgi_app:app",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**ENV, "CUBEMEM_TEST_CUBE": str(path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/status", timeout=1)
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(server.stderr.read())
            time.sleep(0.2)
    yield base
    server.terminate()
    server.wait(30)


def get_json(url: str, data: bytes | None = None) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
        return json.loads(response.read())


def test_worker_processes_inside_uvicorn(uvicorn_server):
    ids = [
        get_json(f"{uvicorn_server}/add", f"request {i} remembers a fact".encode())["id"]
        for i in range(30)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = get_json(f"{uvicorn_server}/status")
        if status["stored"] == 30:
            break
        time.sleep(0.2)
    assert status["stored"] == 30, status
    assert status["done"] >= 1 and status["workers"] == 1
    assert set(get_json(f"{uvicorn_server}/ids")["ids"]) == set(ids)
