"""The shared-memory commands: ``cubemem serve`` on a fresh root (the first key, /docs, 401),
and agents, grants, review and audit from the shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from cubemem import MemoryOS
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
        for _ in range(300):
            try:
                docs = httpx.get(f"{url}/docs")
                break
            except httpx.TransportError:
                time.sleep(0.1)
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
    made = json.loads(invoke("agents", "create", "intern", "--data", root, "--trust", "0.2"))
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
