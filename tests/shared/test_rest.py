"""The REST API on a real server process: authentication, the committed OpenAPI schema,
hostile bodies (4xx with a message, store unchanged) and Schemathesis over every route."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from cubemem.server.app import openapi_schema

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_committed_openapi_schema_is_the_served_one(server):
    committed = json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))
    assert committed == openapi_schema(), "run `uv run cubemem openapi --out docs/openapi.json`"
    assert httpx.get(f"{server.url}/openapi.json").json() == committed
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_the_api_docs_pages_load_nothing_from_outside_the_server(server):
    """/docs and /redoc work offline: every script and style they name is served here."""
    import re

    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{server.url}{page}").text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], html
        for asset in assets:
            assert httpx.get(f"{server.url}{asset}").status_code == 200, asset
    bundle = httpx.get(f"{server.url}/static-offline-docs/swagger-ui-bundle.js").text
    assert '"5.' in bundle  # Swagger UI 5: it renders OpenAPI 3.1, which FastAPI serves


def test_401_and_403_are_distinct(team):
    url = f"{team.server.url}/v1/cubes/{team.cube}/search"
    body = {"query": "x"}
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "AuthenticationError"
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer cm_not-a-key"})
    assert wrong.status_code == 401
    basic = httpx.post(url, json=body, headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    outsider = team.agent(None)
    denied = httpx.post(url, json=body, headers=_auth(outsider))
    assert denied.status_code == 403 and "no grant" in denied.json()["error"]["message"]
    reader = team.agent("read")
    write = httpx.post(
        f"{team.server.url}/v1/cubes/{team.cube}/memories",
        json={"content": "x"},
        headers=_auth(reader),
    )
    assert write.status_code == 403 and "'write'" in write.json()["error"]["message"]
    assert httpx.get(f"{team.server.url}/health").json()["status"] == "ok"


def test_an_agent_without_read_sees_no_entity_through_any_route(team):
    team.admin.open_cube(team.cube).add("Ana Souza moved to Porto", wait=True)
    base = f"{team.server.url}/v1/cubes/{team.cube}"
    reader, outsider = team.agent("read"), team.agent(None)
    seen = httpx.post(f"{base}/entities", json={"query": "Ana"}, headers=_auth(reader))
    assert seen.status_code == 200 and [e["name"] for e in seen.json()] == ["Ana Souza"]
    for route, body in (
        ("entities", {"query": "Ana"}),
        ("relations", {"entity": "Ana Souza"}),
        ("neighbourhood", {"entity": "Porto"}),
        ("search", {"query": "Ana", "as_of": "2030-01-01T00:00:00Z"}),
    ):
        denied = httpx.post(f"{base}/{route}", json=body, headers=_auth(outsider))
        assert denied.status_code == 403, route
        assert "Ana" not in denied.text and "Porto" not in denied.text


def _auth(client) -> dict[str, str]:
    return {"Authorization": client._t.client.headers["Authorization"]}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 422, "JSON"),
        (b'{"content": 5}', 422, "content"),
        (b'{"content": "x", "wait": "soon"}', 422, "wait"),
        (b'{"content": "x", "colour": "red"}', 422, "colour"),
        (b'{"content": []}', 422, "1 to 1000"),
        (b'{"content": "\\u0000"}', 422, "NUL"),
        (b'{"content": "x", "metadata": {"a": {"b": 1}}}', 422, "metadata"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "JSON"),
        (b'{"content": "' + b"x" * (5 << 20) + b'"}', 413, "bytes"),
    ],
)
def test_hostile_bodies_get_a_4xx_and_change_nothing(team, body, status, says):
    writer = team.agent("write")
    cube = writer.open_cube(team.cube)
    cube.add("kept")
    before = [(i.id, i.version) for i in cube.list()]
    response = httpx.post(
        f"{team.server.url}/v1/cubes/{team.cube}/memories",
        content=body,
        headers={**_auth(writer), "Content-Type": "application/json"},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert says.lower() in error["message"].lower(), error
    assert [(i.id, i.version) for i in cube.list()] == before


def test_pages_and_limits(team):
    cube = team.agent("write").open_cube(team.cube)
    ids = [i.id for i in cube.add([f"fact number {n}" for n in range(7)])]
    url = f"{team.server.url}/v1/cubes/{team.cube}/memories"
    headers = {"Authorization": f"Bearer {team.server.admin_key}"}
    first = httpx.get(url, params={"limit": 5}, headers=headers).json()
    assert [i["id"] for i in first["items"]] == ids[:5] and first["next_offset"] == 5
    rest = httpx.get(url, params={"limit": 5, "offset": 5}, headers=headers).json()
    assert [i["id"] for i in rest["items"]] == ids[5:] and rest["next_offset"] is None
    too_many = httpx.get(url, params={"limit": 10_000}, headers=headers)
    assert too_many.status_code == 422
    big_k = httpx.post(
        f"{team.server.url}/v1/cubes/{team.cube}/search",
        json={"query": "x", "k": 5000},
        headers=headers,
    )
    assert big_k.status_code == 422 and "k" in big_k.json()["error"]["message"]


schema = schemathesis.openapi.from_dict(openapi_schema())
"""The schema the server serves (the test above checks they are the same)."""


@pytest.fixture(scope="module")
def fuzz_cube(server):
    admin = server.admin()
    if "fuzzed" not in admin.list_cubes():
        admin.create_cube("fuzzed").add(["a first memory", "a second memory"])
    admin.close()
    return "fuzzed"


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_generated_request_is_a_server_error(case, server, fuzz_cube):
    """Every route, random bodies, headers and parameters: never a 5xx. Cube names point at a
    real cube (half the time) so the handlers behind the 404 are reached too."""
    if "name" in (case.path_parameters or {}) and hash(str(case.body)) % 2 == 0:
        case.path_parameters["name"] = fuzz_cube
    if case.path.endswith("/wait") and isinstance(case.body, dict):
        case.body["timeout_s"] = 0.5  # waiting for ids that never come is not the point
    if (case.path_parameters or {}).get("agent") == "admin":
        case.path_parameters["agent"] = "not-the-admin"
    case.call_and_validate(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.admin_key}"},
        checks=[not_a_server_error],
    )
