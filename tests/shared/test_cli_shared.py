"""The shared-memory commands: ``cubemem serve`` on a fresh root (the first key, /docs, 401),
and agents, grants, review and audit from the shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from unittest.mock import ANY

import httpx
import pytest
from typer.testing import CliRunner

from cubemem import MemoryOS, NotFoundError
from cubemem.cli import app

from .conftest import free_port, stop

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_first_serve_prints_an_operator_key_and_refuses_strangers(tmp_path):
    port = free_port()
    command = ["serve", "--data", str(tmp_path / "m"), "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "cubemem.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    try:
        lines = []
        while not any(line.strip().startswith("cm_") for line in lines):
            line = process.stderr.readline().decode()
            assert line, "serve exited before printing a key"
            lines.append(line)
        key = next(line.strip() for line in lines if line.strip().startswith("cm_"))
        url = f"http://127.0.0.1:{port}"
        _until_listening(process, port)  # it answers at once, warming up meanwhile
        deadline = time.monotonic() + 300
        while (ready := httpx.get(f"{url}/ready")).status_code == 503:
            assert ready.json() == {"status": "starting"} and time.monotonic() < deadline
            time.sleep(0.2)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert httpx.get(f"{url}/health").json()["ready"] is True
        docs = httpx.get(f"{url}/docs")
        assert docs.status_code == 200 and "openapi.json" in docs.text
        assert httpx.get(f"{url}/v1/cubes").status_code == 401
        me = httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {key}"}).json()
        assert me["name"] == "admin" and me["operator"]
    finally:
        stop(process)
    with MemoryOS(tmp_path / "m") as os_:  # a second start makes no second operator
        assert [a.name for a in os_.access.agents()] == ["admin"]


def test_agents_grants_review_and_audit_from_the_shell(tmp_path, embedder):
    root = tmp_path / "m"
    with MemoryOS(root, embedder=embedder) as os_:
        os_.create_cube("team")
    made = json.loads(
        invoke("agents", "create", "intern", "--data", root, "--trust", "0.2", "--json")
    )
    assert made["key"].startswith("cm_") and made["agent"]["trust"] == 0.2
    grant = json.loads(
        invoke("grant", "intern", "team", "write", "--data", root, "--own-agent-scope")
    )
    assert grant["right"] == "write" and grant["scope"]["agent"] == "intern"
    assert [a["name"] for a in json.loads(invoke("agents", "list", "--data", root))] == ["intern"]
    with MemoryOS(root, embedder=embedder) as os_:
        held = os_.authenticate(made["key"]).open_cube("team").add("The wifi password is otter")
    assert held.status.value == "quarantined" and held.scope.agent == "intern"
    waiting = json.loads(invoke("review", "list", "team", "--data", root))
    assert [(w["id"], w["author"]) for w in waiting] == [(held.id, "intern")]
    approved = json.loads(invoke("review", "approve", "team", held.id, "--data", root))
    assert approved == {"id": held.id, "version": 2, "status": "active"}
    assert json.loads(invoke("review", "list", "team", "--data", root)) == []
    entries = json.loads(invoke("audit", "team", "--data", root))
    assert [(e["action"], e["agent"]) for e in entries[:2]] == [
        ("approve", "cli"),
        ("add", "intern"),
    ]
    refused = runner.invoke(app, ["review", "reject", "team", held.id, "--data", str(root)])
    assert refused.exit_code == 2 and "not quarantined" in refused.output
    invoke("agents", "update", "intern", "--data", root, "--disabled")
    with MemoryOS(root, embedder=embedder) as os_:
        assert os_.authenticate(made["key"]) is None


def _serve_key(root, port: int) -> tuple[subprocess.Popen, list[str]]:
    """Start ``cubemem serve`` and read stderr until it is ready (its lines)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cubemem.cli", "serve", "--data", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    lines: list[str] = []
    while not any("ready in" in line for line in lines):
        line = process.stderr.readline().decode()
        assert line, f"serve exited before it was ready: {lines}"
        lines.append(line)
    _until_listening(process, port)
    return process, lines


def _until_listening(process: subprocess.Popen, port: int) -> None:
    """Until /health answers; a server that exits, or answers nothing in 5 minutes, fails."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited"
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("serve did not answer /health within 5 minutes")


def test_an_agent_made_before_the_first_serve_still_gets_an_operator_key(tmp_path):
    """The trap: an agent created first (so the root is 'configured') left no operator and no
    key was ever printed. Now serve makes one while the root has no operator, and a lost key
    is replaced with `cubemem operator-key --rotate`."""
    root = tmp_path / "m"
    invoke("cubes", "create", "team", "--data", root)
    invoke("agents", "create", "bot", "--data", root)
    process, lines = _serve_key(root, port := free_port())
    try:
        key = next(line.strip() for line in lines if line.strip().startswith("cm_"))
        me = httpx.get(f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.json()["name"] == "admin" and me.json()["operator"]
    finally:
        stop(process)
    process, lines = _serve_key(root, free_port())  # an operator exists: no new key, a hint
    stop(process)
    assert not any(line.strip().startswith("cm_") for line in lines)
    assert any("operator-key --rotate" in line for line in lines)
    refused = runner.invoke(app, ["operator-key", "--data", str(root)])
    assert refused.exit_code == 2 and "--rotate" in refused.output
    rotated = json.loads(invoke("operator-key", "--data", root, "--rotate", "--json"))
    with MemoryOS(root) as os_:
        assert os_.authenticate(rotated["key"]).agent.name == "admin"
        assert os_.authenticate(key) is None  # the old key stopped
    other = json.loads(invoke("operator-key", "--data", root, "--name", "ops", "--json"))
    with MemoryOS(root) as os_:
        assert os_.authenticate(other["key"]).agent.operator


def test_cubes_are_created_in_a_root_and_grants_name_existing_ones(tmp_path):
    root = tmp_path / "m"
    made = json.loads(invoke("cubes", "create", "team", "--data", root, "--json"))
    assert made["name"] == "team"
    assert json.loads(invoke("cubes", "list", "--data", root, "--json")) == ["team"]
    again = runner.invoke(app, ["cubes", "create", "team", "--data", str(root)])
    assert again.exit_code == 2 and "team" in again.output
    invoke("agents", "create", "bot", "--data", root, "--json")
    typo = runner.invoke(app, ["grant", "bot", "teem", "read", "--data", str(root)])
    assert typo.exit_code == 2 and "no cube 'teem'" in typo.output
    assert "cubes create teem" in typo.output
    with MemoryOS(root) as os_:
        assert os_.access.grants() == []  # nothing was granted
        with pytest.raises(NotFoundError, match="no cube"):
            os_.access.grant("bot", "teem", "read")
    granted = json.loads(invoke("grant", "bot", "team", "read", "--data", root, "--json"))
    assert granted["right"] == "read"


def test_every_command_that_prints_data_takes_json(tmp_path):
    """--json on each of them prints one JSON document and nothing else."""
    root = tmp_path / "m"
    commands = [
        ["cubes", "create", "team"],
        ["cubes", "list"],
        ["agents", "create", "bot"],
        ["agents", "list"],
        ["agents", "update", "bot", "--trust", "0.4"],
        ["agents", "rotate-key", "bot"],
        ["grant", "bot", "team", "write"],
        ["audit", "team"],
        ["review", "list", "team"],
        ["revoke", "bot", "team"],
        ["operator-key"],
        ["agents", "delete", "bot"],
    ]
    for command in commands:
        out = invoke(*command, "--data", root, "--json")
        json.loads(out)  # one document
        assert out.count("\n") == 1, (command, out)


def test_ready_says_starting_until_the_warm_up_ends(tmp_path, embedder):
    """``/ready`` is 503 while the server warms up and 200 after, naming cubes it could not
    warm; ``/health`` (liveness) is 200 throughout."""
    from fastapi.testclient import TestClient

    from cubemem.server.app import create_app
    from cubemem.server.routes.service import Readiness

    with MemoryOS(tmp_path / "m", embedder=embedder) as os_:
        app = create_app(os_)
        app.state.readiness = readiness = Readiness(ready=False)
        client = TestClient(app)
        assert client.get("/ready").status_code == 503
        assert client.get("/health").json()["ready"] is False
        readiness.finish({"cubes": [], "cold": {"old": "built with another embedder"}})
        answer = client.get("/ready")
        assert answer.status_code == 200
        assert answer.json()["cold"] == {"old": "built with another embedder"}
        assert client.get("/health").json() == {"status": "ok", "version": ANY, "ready": True}
