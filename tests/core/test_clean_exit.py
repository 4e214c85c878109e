"""A process that queues background writes and exits without ``close()`` exits cleanly and
loses no acknowledged write (before: exit 134, "terminate called without an active exception",
in most runs)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cubemem import MemCube, Settings

CHILD = """
import json, sys
from cubemem import MemCube, Settings
settings = Settings(exit_drain_s=float(sys.argv[2]))
cube = MemCube.open(sys.argv[1], create=True, settings=settings)
if sys.argv[3] == "warm":
    cube.maintenance.warm()  # the model is loaded before the writes (as a server does)
ids = []
for i in range(30):
    ids += cube.add_messages(
        [{"speaker": "u", "text": f"message {i} about topic {i % 7}"}], session="s", wait=False
    )
print(json.dumps(ids), flush=True)
# no cube.close(): the interpreter exits with workers running
"""


def _run(path, drain: float, warm: bool = False) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(drain), "warm" if warm else "cold"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_exit_without_close_never_aborts_or_loses_a_write(tmp_path, embedder):
    first = _run(tmp_path / "cube", drain=30.0, warm=True)
    with MemCube.open(tmp_path / "cube", embedder=embedder, settings=Settings(workers=0)) as cube:
        assert {m.id for m in cube.iter()} == set(first)  # drained before exiting
    acknowledged = list(first)
    for _ in range(2):
        acknowledged += _run(tmp_path / "cube", drain=30.0)
    # The first run loaded the model before writing, so it drained at exit; the later runs
    # never loaded it (creating or opening a cube loads no model, and nothing can be imported
    # during shutdown): their writes wait, durable, and the next open finishes them.
    with MemCube.open(tmp_path / "cube", embedder=embedder) as cube:
        assert cube.scheduler.wait(acknowledged, timeout=120)
        assert {m.id for m in cube.iter()} == set(acknowledged) and len(acknowledged) == 90
        assert cube.scheduler.status().failed == []


@pytest.mark.slow
def test_exit_without_draining_keeps_the_queue_for_the_next_run(tmp_path, embedder):
    acknowledged = _run(tmp_path / "cube", drain=0.0)
    settings = Settings(workers=1)
    with MemCube.open(tmp_path / "cube", embedder=embedder, settings=settings) as cube:
        assert cube.scheduler.wait(acknowledged, timeout=120)  # resumed on open
        assert {m.id for m in cube.iter()} == set(acknowledged)
