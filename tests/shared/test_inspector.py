"""The web inspector (``/ui``) of a real ``cubemem serve`` on loopback, driven over HTTP as a
browser would (cookies, forms, redirects): log in with a key, find a memory, read its
versions, approve a held write and see another agent get it, a revoked grant refused, stored
markup shown as text, a form without its CSRF token refused, nothing loaded from outside."""

from __future__ import annotations

import re

import httpx
import pytest

from cubemem import NotFoundError


def _browser(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, follow_redirects=True, timeout=60)


def _login(browser: httpx.Client, key: str) -> httpx.Response:
    form = browser.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    return browser.post("/ui/login", data={"key": key, "csrf": csrf})


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def lead(team):
    agent, key = team.admin.create_agent(f"lead-{team.cube}", trust=0.9)
    team.admin.grant(agent.name, team.cube, "admin")
    return key


def test_login_sets_a_strict_httponly_session_and_a_wrong_key_is_refused(team, lead):
    browser = _browser(team.server.url)
    assert browser.get("/ui").url.path == "/ui/login"  # no session: the login page
    wrong = _login(browser, "cm_not-a-key")
    assert wrong.status_code == 401 and "unknown or disabled key" in wrong.text
    done = _login(browser, lead)
    assert done.status_code == 200 and done.url.path == "/ui" and team.cube in done.text
    assert re.search(r'<td class="num">0</td>', done.text)  # its memories, counted
    cookie = next(c for c in done.history[0].headers.get_list("set-cookie") if "cubemem_ui=" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    no_token = httpx.post(f"{team.server.url}/ui/login", data={"key": lead})
    assert no_token.status_code == 403  # the login form has its CSRF token too


def test_find_a_memory_and_read_its_versions(team, lead):
    writer = team.agent("write").open_cube(team.cube)
    item = writer.add("Ana's flight to Oslo leaves at 9", wait=True)
    writer.update(item.id, "Ana's flight to Oslo leaves at 11")
    browser = _browser(team.server.url)
    _login(browser, lead)
    found = browser.get(f"/ui/cubes/{team.cube}/search", params={"q": "when is Ana's flight"})
    assert found.status_code == 200 and "leaves at 11" in found.text
    assert f"/memories/{item.id}" in found.text
    page = browser.get(f"/ui/cubes/{team.cube}/memories/{item.id}")
    assert page.status_code == 200
    assert "-Ana&#39;s flight to Oslo leaves at 9" in page.text
    assert "+Ana&#39;s flight to Oslo leaves at 11" in page.text
    listed = browser.get(f"/ui/cubes/{team.cube}", params={"status": "active"})
    assert "leaves at 11" in listed.text
    later = browser.get(f"/ui/cubes/{team.cube}", params={"after": "2100-01-01"})
    assert later.status_code == 200 and "leaves at 11" not in later.text  # by time too
    searched = browser.get(f"/ui/cubes/{team.cube}/search", params={"q": "Ana"}).text
    assert '<th class="num">entity</th>' in searched and '<th class="num">time</th>' in searched


def test_approve_a_held_write_and_another_agent_sees_it(team, lead):
    intern = team.agent("write", trust=0.2).open_cube(team.cube)
    reader = team.agent("read").open_cube(team.cube)
    held = intern.add("The office moves to Porto in May", wait=True)
    assert held.status.value == "quarantined" and reader.search("office moves") == []
    browser = _browser(team.server.url)
    _login(browser, lead)
    queue = browser.get(f"/ui/cubes/{team.cube}/review")
    assert "The office moves to Porto in May" in queue.text
    action = f"/ui/cubes/{team.cube}/review/{held.id}/approve"
    forged = browser.post(action, data={})  # a form posted without the session's token
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert reader.search("office moves") == []
    done = browser.post(action, data={"csrf": _csrf(queue.text)})
    assert done.status_code == 200 and "nothing waits" in done.text
    assert [r.item.id for r in reader.search("office moves")] == [held.id]
    audit = browser.get(f"/ui/cubes/{team.cube}/audit")
    assert "approve" in audit.text and f"lead-{team.cube}" in audit.text


def test_a_revoked_grant_closes_the_pages(team):
    agent, key = team.admin.create_agent(f"viewer-{team.cube}", trust=0.9)
    team.admin.grant(agent.name, team.cube, "read")
    browser = _browser(team.server.url)
    _login(browser, key)
    assert browser.get(f"/ui/cubes/{team.cube}").status_code == 200
    team.admin.revoke(agent.name, team.cube)
    refused = browser.get(f"/ui/cubes/{team.cube}")
    assert refused.status_code == 403 and "PermissionDeniedError" in refused.text
    assert f'/ui/cubes/{team.cube}"' not in browser.get("/ui").text


def test_stored_markup_is_shown_as_text_and_nothing_comes_from_outside(team, lead):
    writer = team.agent("write").open_cube(team.cube)
    item = writer.add('<script>alert("zq7")</script><img src=x onerror=alert(1)>', wait=True)
    browser = _browser(team.server.url)
    _login(browser, lead)
    for path in (f"/ui/cubes/{team.cube}", f"/ui/cubes/{team.cube}/memories/{item.id}"):
        html = browser.get(path).text
        assert '<script>alert("zq7")' not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;zq7&#34;)&lt;/script&gt;" in html
        assert not re.findall(r'(?:src|href|action)="(?:https?:)?//', html)


def test_forget_asks_first_then_erases_and_audits(team, lead):
    writer = team.agent("write").open_cube(team.cube)
    item = writer.add("Ana's passport is zq7ui1234", wait=True)
    browser = _browser(team.server.url)
    _login(browser, lead)
    ask = browser.get(f"/ui/cubes/{team.cube}/memories/{item.id}/forget")
    assert ask.status_code == 200 and "no restore" in ask.text
    assert writer.get(item.id).content == "Ana's passport is zq7ui1234"  # asking changes nothing
    action = f"/ui/cubes/{team.cube}/memories/{item.id}/forget"
    assert browser.post(action, data={}).status_code == 403
    done = browser.post(action, data={"csrf": _csrf(ask.text)})
    assert done.status_code == 200 and "Forgotten: 1 memory" in done.text
    with pytest.raises(NotFoundError):
        writer.get(item.id)
    audit = browser.get(f"/ui/cubes/{team.cube}/audit").text
    assert "forget" in audit and item.id[:12] in audit and "zq7ui1234" not in audit


def test_grants_and_agents_from_the_pages(team, server):
    browser = _browser(team.server.url)
    _login(browser, server.admin_key)  # the operator
    agents = browser.get("/ui/agents")
    name = f"ui-{team.cube}"
    made = browser.post(
        "/ui/agents", data={"agent": name, "trust": "0.9", "csrf": _csrf(agents.text)}
    )
    key = re.search(r'class="new-key">([^<]+)<', made.text).group(1)
    grants = browser.get(f"/ui/cubes/{team.cube}/grants")
    browser.post(
        f"/ui/cubes/{team.cube}/grants",
        data={"agent": name, "right": "read", "csrf": _csrf(grants.text)},
    )
    other = _browser(team.server.url)
    _login(other, key)
    assert other.get(f"/ui/cubes/{team.cube}").status_code == 200  # the grant opened it
    grants = browser.get(f"/ui/cubes/{team.cube}/grants")
    assert name in grants.text
    browser.post(f"/ui/cubes/{team.cube}/grants/{name}/revoke", data={"csrf": _csrf(grants.text)})
    assert other.get(f"/ui/cubes/{team.cube}").status_code == 403  # and the revoke closed it
    rotated = browser.post(f"/ui/agents/{name}/key", data={"csrf": _csrf(grants.text)})
    assert rotated.status_code == 200 and "shown this once" in rotated.text
    assert other.get("/ui").url.path == "/ui/login"  # the old key's session ended


def test_a_non_operator_cannot_manage_agents(team, lead):
    browser = _browser(team.server.url)
    _login(browser, lead)
    assert browser.get("/ui/agents").status_code == 403


def test_cubemem_ui_opens_a_local_cube_with_a_one_time_link(tmp_path, embedder):
    """``cubemem ui CUBE`` serves the inspector of a local cube on 127.0.0.1 and prints a
    login link that works once."""
    import subprocess
    import sys
    import time

    from cubemem import MemCube

    from .conftest import free_port, stop

    with MemCube.create(tmp_path / "notes", embedder=embedder) as cube:
        cube.add("Ana prefers the window seat")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cubemem.cli", "ui", str(tmp_path / "notes"), "--port",
         str(port), "--no-open"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        link = re.search(r"(http://127\.0\.0\.1:\d+/ui/login/once\?token=\S+)", line).group(1)
        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, line
                time.sleep(0.2)
        browser = httpx.Client(follow_redirects=True, timeout=60)
        home = browser.get(link)
        assert home.url.path == "/ui" and "notes" in home.text
        memories = browser.get(f"http://127.0.0.1:{port}/ui/cubes/notes")
        assert "Ana prefers the window seat" in memories.text
        again = httpx.get(link, follow_redirects=True)
        assert again.status_code == 401 and "used already" in again.text
    finally:
        stop(process)


def test_entities_as_a_graph_and_search_as_of_a_date(team, lead):
    writer = team.agent("write").open_cube(team.cube)
    writer.add("Ana Souza and Ben hiked in Sintra", valid_from="2018-05-01T00:00:00Z")
    writer.add("Ben lives in Porto", valid_from="2020-01-01T00:00:00Z")
    lisbon = writer.add("Ana lives in Lisbon", valid_from="2015-03-01T00:00:00Z")
    writer.update(lisbon.id, "Ana lives in Berlin", valid_from="2021-06-01T00:00:00Z")
    browser = _browser(team.server.url)
    _login(browser, lead)
    listed = browser.get(f"/ui/cubes/{team.cube}/entities", params={"q": "Ben"})
    ben = re.search(r'/entities/([0-9a-f]+)">Ben<', listed.text).group(1)
    now = browser.get(f"/ui/cubes/{team.cube}/entities/{ben}")
    assert now.status_code == 200 and "<svg" in now.text and "<line" in now.text
    assert ">Porto<" in now.text and ">Sintra<" in now.text
    then = browser.get(f"/ui/cubes/{team.cube}/entities/{ben}", params={"as_of": "2019-06-01"})
    assert ">Sintra<" in then.text and ">Porto<" not in then.text  # not in Porto yet
    where = {"q": "where does Ana live"}
    assert "Ana lives in Berlin" in browser.get(f"/ui/cubes/{team.cube}/search", params=where).text
    past = browser.get(f"/ui/cubes/{team.cube}/search", params=where | {"as_of": "2019-01-01"})
    assert "Ana lives in Lisbon" in past.text and "Ana lives in Berlin" not in past.text
    bad = browser.get(f"/ui/cubes/{team.cube}/search", params=where | {"as_of": "someday"})
    assert bad.status_code == 422 and "InvalidInputError" in bad.text
