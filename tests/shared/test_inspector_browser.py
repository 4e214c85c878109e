"""The web inspector in a real browser: Playwright driving Debian's Chromium against a real
``cubemem serve`` — log in, search, open a memory's history, approve a held write, and a
stored ``<script>`` that never runs. Screenshots of the pages are taken on every run; with
``CUBEMEM_SCREENSHOTS=docs/img`` they replace the ones docs/inspector.md shows.

Chromium comes from the OS (Playwright cannot download browsers here): ``apt-get install
chromium``; ``.ci/run`` installs it when it is missing. Without it these tests fail in CI and
say so elsewhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page():
    if CHROMIUM is None:
        message = "Chromium is not installed: run `apt-get install chromium` (Debian) first"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        outside: list[str] = []
        context.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith("http://127.0.0.1") else None,
        )
        yield context.new_page()
        browser.close()
        assert outside == []  # nothing was asked of anything outside the server


def _login(page, url: str, key: str) -> None:
    page.goto(f"{url}/ui")
    page.fill("input[name=key]", key)
    page.click("button:has-text('log in')")
    page.wait_for_url(f"{url}/ui")


def test_the_inspector_in_a_browser(team, page, tmp_path):
    url = team.server.url
    shots = Path(os.environ.get("CUBEMEM_SCREENSHOTS") or tmp_path)
    agent, key = team.admin.create_agent(f"lead-{team.cube}", trust=0.9)
    team.admin.grant(agent.name, team.cube, "admin")
    writer = team.agent("write").open_cube(team.cube)
    item = writer.add("Ana's flight to Oslo leaves at 9", scope={"user": "ana"}, wait=True)
    writer.update(item.id, "Ana's flight to Oslo leaves at 11")
    writer.add(["Ana is vegetarian", "Ben plays the cello"], scope={"user": "ana"}, wait=True)
    writer.add(["Ana and Ben hiked in Sintra", "Ben lives in Porto"], scope={"user": "ana"})
    trap = writer.add('<script>window.zq7ran = 1</script>Ben\'s "notes"', wait=True)
    intern = team.agent("write", trust=0.2).open_cube(team.cube)
    held = intern.add("The office moves to Porto in May", wait=True)

    _login(page, url, key)
    header = "getComputedStyle(document.querySelector('header')).backgroundColor"
    assert page.evaluate(header) == "rgb(35, 50, 74)"  # the stylesheet passes the page's CSP
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shots / "inspector-cubes.png")
    page.click(f"a[href='/ui/cubes/{team.cube}']")
    page.wait_for_selector("text=Ana is vegetarian")
    page.screenshot(path=shots / "inspector-memories.png")
    assert page.evaluate("window.zq7ran") is None  # the stored script did not run
    assert page.locator(f"a[href$='{trap.id}']").inner_text().startswith("<script>")

    page.click("nav >> text=search")
    page.fill("input[name=q]", "when does Ana fly")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("text=leaves at 11")
    page.screenshot(path=shots / "inspector-search.png")
    page.click("text=Ana's flight to Oslo leaves at 11")
    page.wait_for_selector("text=Versions")
    assert "-Ana's flight to Oslo leaves at 9" in page.inner_text("body")
    page.screenshot(path=shots / "inspector-memory.png", full_page=True)

    page.click("nav >> text=entities")
    page.fill("input[name=q]", "Ben")
    page.press("input[name=q]", "Enter")
    page.click("td >> a:text-is('Ben')")
    page.wait_for_selector("svg circle")
    page.screenshot(path=shots / "inspector-entity.png")

    page.click("nav >> text=review")
    page.wait_for_selector("text=The office moves to Porto in May")
    page.screenshot(path=shots / "inspector-review.png")
    page.click("button:has-text('approve')")
    page.wait_for_selector("text=nothing waits")
    reader = team.agent("read").open_cube(team.cube)
    assert held.id in [r.item.id for r in reader.search("office moves")]

    page.click("nav >> text=audit")
    page.wait_for_selector("text=approve")
    page.screenshot(path=shots / "inspector-audit.png")

    # a form posted without the session's CSRF token (as another site's page would) is refused
    status = page.evaluate(
        "async (u) => (await fetch(u, {method: 'POST', body: new URLSearchParams()})).status",
        f"{url}/ui/cubes/{team.cube}/review/{held.id}/reject",
    )
    assert status == 403
    # and a revoked grant closes the pages at the next click
    team.admin.revoke(agent.name, team.cube)
    page.click("nav >> text=memories")
    assert "PermissionDeniedError" in page.inner_text("body")
