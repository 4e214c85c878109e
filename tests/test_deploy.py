"""The deployment files users copy: the compose file parses and runs the services the guide
describes, each scaled-out process gets the store and queue URLs and no shared folder (the
database holds the catalog), and the load balancer spreads over the API servers."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_matches_the_guide():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"postgres", "valkey", "api-1", "api-2", "worker", "lb"}
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in services:
        assert f"`{name}`" in guide, f"docs/deploy.md does not describe {name}"
    for name in ("api-1", "api-2", "worker"):
        service = services[name]
        env = service["environment"]
        assert env["CUBEMEM_STORE_URL"].startswith("postgresql://")
        assert env["CUBEMEM_QUEUE_URL"].startswith("redis://")
        assert not service.get("volumes"), "on PostgreSQL the processes share no folder"
        assert service["command"][0] == "cubemem" and "/data" in service["command"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["worker"]["command"][1] == "worker"
    assert "vector" in services["postgres"]["image"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "server api-1:8765" in nginx and "server api-2:8765" in nginx
    assert (ROOT / "deploy" / "Dockerfile").read_text().count("uv sync --locked") == 1
