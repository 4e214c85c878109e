"""Many agents writing over HTTP at once: every acknowledged write is stored exactly once,
and a client that retries after losing the answer does not store twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from cubemem.remote import RemoteMemoryOS

CHILD = Path(__file__).with_name("writer_child.py")
AGENTS, WRITES = 8, 60
"""Eight processes at once; how many writes each makes does not change what is asserted."""


@pytest.mark.slow
def test_eight_agent_processes_write_at_once(team):
    keys = []
    for n in range(AGENTS):
        agent, key = team.admin.create_agent(f"w{n}-{team.cube}", trust=0.9)
        team.admin.grant(agent.name, team.cube, "write")
        keys.append((agent.name, key))
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), team.server.url, key, team.cube, str(WRITES), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        for name, key in keys
    ]
    acknowledged: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err.decode()[-2000:]
        acknowledged += json.loads(out)
    assert len(acknowledged) == len(set(acknowledged)) == AGENTS * WRITES
    cube = team.admin.open_cube(team.cube)
    assert cube.wait(acknowledged, timeout=120)
    stored = list(cube.iter())
    texts = Counter(i.content for i in stored)
    expected = {f"{name} wrote note {i}" for name, _ in keys for i in range(WRITES)}
    assert set(texts) == expected and set(texts.values()) == {1}
    assert {i.id for i in stored} == set(acknowledged)
    authors = Counter(i.provenance.author_agent for i in stored)
    assert authors == {name: WRITES for name, _ in keys}


class DropFirstAnswer(httpx.BaseTransport):
    """Sends each request to the server, but loses the answer of the first write: the
    server did the work, the client saw a broken connection."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        write = request.method == "POST" and request.url.path.endswith(("/memories", "/messages"))
        if write and self.dropped == 0:
            response.read()
            self.dropped += 1
            raise httpx.ReadError("connection reset after the server answered")
        return response


@pytest.mark.parametrize("wait", [True, False])
def test_a_retry_after_a_lost_answer_does_not_duplicate(team, wait):
    agent, key = team.admin.create_agent(f"flaky-{wait}-{team.cube}", trust=0.9)
    team.admin.grant(agent.name, team.cube, "write")
    transport = DropFirstAnswer()
    with RemoteMemoryOS(team.server.url, key, transport=transport) as memory:
        cube = memory.open_cube(team.cube)
        result = cube.add(["Ana lands at 9", "Ben lands at 10"], wait=wait)
        ids = [i.id for i in result] if wait else result
        assert transport.dropped == 1
        turns = cube.add_messages([{"speaker": "Ana", "content": "see you at the gate"}])
        assert cube.wait([*ids, *[t.id for t in turns]], timeout=30)
        assert sorted(i.content for i in cube.iter()) == [
            "Ana lands at 9",
            "Ben lands at 10",
            "see you at the gate",
        ]
