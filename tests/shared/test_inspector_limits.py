"""The inspector's pages under an agent that would abuse them: the per-agent request rate
counts its pages as it counts the API, failed logins are limited per address, the pages carry
headers against framing, sniffing, referrers and caching (the page with a new key above all),
and no redirect names the host a request's ``Host`` header claimed."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from cubemem import MemoryOS, Settings
from cubemem.server.app import create_app


def _login(client: TestClient, key: str):
    form = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    return client.post("/ui/login", data={"key": key, "csrf": csrf})


def _served(tmp_path, embedder, **settings):
    os_ = MemoryOS(tmp_path / "os", embedder=embedder, settings=Settings(**settings))
    _, operator_key = os_.access.create_agent("root", trust=1.0, operator=True)
    os_.create_cube("team")
    os_.open_cube("team").add("The office moves to Porto in May")
    return os_, operator_key, TestClient(create_app(os_))


def test_pages_count_against_the_agents_request_rate(tmp_path, embedder):
    os_, key, client = _served(tmp_path, embedder, rate_limit_per_minute=20)
    with os_, client:
        assert _login(client, key).status_code == 200
        codes = [
            client.get("/ui/cubes/team/search", params={"q": "office"}).status_code
            for _ in range(30)
        ]
        assert 429 in codes and codes.count(200) <= 20
        api = client.get("/v1/cubes", headers={"Authorization": f"Bearer {key}"})
        assert api.status_code == 429  # one budget for the agent, pages and API together


def test_failed_logins_are_limited_per_address_and_a_good_key_still_counts(tmp_path, embedder):
    os_, key, client = _served(tmp_path, embedder, login_attempts_per_minute=5)
    with os_, client:
        assert _login(client, key).status_code == 200  # a good key spends nothing
        client.cookies.clear()
        codes = [_login(client, f"cm_guess{n}").status_code for n in range(12)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert _login(client, key).status_code == 429  # over the count, every attempt waits
        assert "failed logins a minute from this address" in _login(client, key).text


def test_page_headers_and_relative_redirects(tmp_path, embedder):
    os_, key, client = _served(tmp_path, embedder)
    with os_, client:
        login = client.get("/ui/login")
        for header in ("x-frame-options", "content-security-policy", "x-content-type-options"):
            assert header in login.headers
        assert login.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        assert login.headers["x-content-type-options"] == "nosniff"
        assert login.headers["referrer-policy"] == "no-referrer"
        _login(client, key)
        page = client.get("/ui/agents")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        made = client.post("/ui/agents", data={"agent": "helper", "trust": "0.5", "csrf": csrf})
        assert made.status_code == 200 and "cm_" in made.text  # the new key, shown once
        assert made.headers["cache-control"] == "no-store"
        for path in ("/ui/cubes/team/", "/v1/cubes/"):
            moved = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
            assert moved.status_code in (301, 302, 303, 307, 308), path
            assert (
                moved.headers["location"].startswith("/")
                and "evil" not in moved.headers["location"]
            )
        sneaky = client.get("/\\evil.example/", follow_redirects=False)
        assert not sneaky.headers.get("location", "/").startswith(("//", "/\\"))
