"""Two ``cubemem serve`` processes and two ``cubemem worker`` processes over one PostgreSQL
store and one Redis-compatible queue, each with its own ``--data`` folder (as on four
machines: nothing shared but the database and the queue): writes through both servers are all
stored exactly once, each server finds the other's, and killing a server and a worker mid-run
loses nothing acknowledged (the others take their tasks over when the leases run out)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cubemem import MemoryOS, Settings
from cubemem.remote import RemoteMemoryOS

from .conftest import start_server, stop

CHILD = Path(__file__).with_name("writer_child.py")
WRITERS_PER_SERVER, WRITES = 2, 150


@pytest.mark.slow
def test_two_servers_one_postgres_one_queue(tmp_path, fresh_postgres_url, redis_url):
    postgres_url = fresh_postgres_url
    root = tmp_path / "memory"
    shared = {
        "CUBEMEM_STORE_URL": postgres_url,
        "CUBEMEM_QUEUE_URL": redis_url,
        "CUBEMEM_TASK_LEASE_S": "5",  # a dead server's claimed tasks return quickly
    }
    settings = Settings(store_url=postgres_url, queue_url=redis_url)
    with MemoryOS(root, settings=settings) as os_:
        os_.create_cube("team")
        _, operator = os_.access.create_agent("operator", trust=1.0, operator=True)
        keys = []
        for n in range(2 * WRITERS_PER_SERVER):
            agent, key = os_.access.create_agent(f"w{n}", trust=0.9)
            os_.access.grant(agent.name, "team", "write")
            keys.append((agent.name, key))
    # the cube, the agents and their grants were made through root; the others start empty
    a, url_a = start_server(root, env=shared)
    b, url_b = start_server(tmp_path / "host-b", env=shared)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "cubemem.cli", "worker", "--data", str(tmp_path / f"w{n}")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **shared},
        )
        for n in range(2)
    ]
    try:
        children = [
            subprocess.Popen(
                [sys.executable, str(CHILD), url, key, "team", str(WRITES), name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            for n, (name, key) in enumerate(keys)
            for url in [url_a if n % 2 == 0 else url_b]
        ]
        acknowledged: list[str] = []
        workers[0].send_signal(signal.SIGKILL)  # mid-run: its claimed tasks come back
        for child in children:
            out, err = child.communicate(timeout=600)
            assert child.returncode == 0, err.decode()[-2000:]
            acknowledged += json.loads(out)
        a.send_signal(signal.SIGKILL)  # whatever A had queued or claimed is B's to finish
        a.wait()
        with RemoteMemoryOS(url_b, operator) as client:
            cube = client.open_cube("team")
            assert cube.wait(acknowledged, timeout=120)
            stored = list(cube.iter())
            texts = Counter(i.content for i in stored)
            expected = {f"{name} wrote note {i}" for name, _ in keys for i in range(WRITES)}
            assert set(texts) == expected and set(texts.values()) == {1}
            found = cube.search("w0 wrote note 7", k=3)  # written through A, found on B
            assert "w0 wrote note 7" in [r.item.content for r in found]
    finally:
        for process in [b, a, *workers]:
            if process.poll() is None:
                stop(process)
