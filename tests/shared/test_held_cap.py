"""The review queue cannot be flooded: an agent's writes held for review (quarantined memories
and proposed changes) are capped per cube (``Settings.max_held_per_agent``); over the cap a
write is refused with ``HeldLimitError`` and nothing is written; a review makes room again.
The inspector's review page pages through everything held, so a later item is reachable."""

from __future__ import annotations

import re

import httpx
import pytest

from cubemem import HeldLimitError, MemoryOS, Settings, Status


def test_an_agents_held_writes_are_capped_and_a_review_makes_room(tmp_path, embedder):
    settings = Settings(max_held_per_agent=4)
    with MemoryOS(tmp_path / "os", embedder=embedder, settings=settings) as os_:
        os_.create_cube("team")
        for name, trust in (("intern", 0.2), ("lead", 0.9)):
            os_.access.create_agent(name, trust=trust)
        os_.access.grant("intern", "team", "write")
        os_.access.grant("lead", "team", "admin")
        intern = os_.as_agent("intern").open_cube("team")
        lead = os_.as_agent("lead").open_cube("team")
        published = lead.add("The office is in Lisbon")
        first = intern.add(["note one", "note two"])
        proposal = intern.update(published.id, "The office is in Porto")  # a held change
        assert proposal.status is Status.QUARANTINED
        before = os_.open_cube("team").count({"status": ["active", "quarantined"]})
        with pytest.raises(HeldLimitError, match="max_held_per_agent"):
            intern.add(["note three", "note four"])  # 3 held + 2 > 4: the whole batch refused
        intern.add("note three")  # exactly at the cap
        with pytest.raises(HeldLimitError):
            intern.add("note five", wait=False)  # refused before it is queued
        with pytest.raises(HeldLimitError):
            intern.update(published.id, "The office is in Faro")
        with pytest.raises(HeldLimitError):
            intern.put(("prefs",), "desk", "by the window")
        assert os_.open_cube("team").count({"status": ["active", "quarantined"]}) == before + 1
        assert lead.add("A trusted agent is never held").status is Status.ACTIVE
        lead.reject(first[0].id)
        assert intern.add("note six").status is Status.QUARANTINED  # room again


def test_the_review_page_pages_through_every_held_write(team):
    lead_agent, lead_key = team.admin.create_agent(f"lead-{team.cube}", trust=0.9)
    team.admin.grant(lead_agent.name, team.cube, "admin")
    intern = team.agent("write", trust=0.2).open_cube(team.cube)
    intern.add([f"routine note number {n}" for n in range(60)], wait=True)
    late = intern.add("The legitimate change that came last", wait=True)
    browser = httpx.Client(base_url=team.server.url, follow_redirects=True, timeout=60)
    form = browser.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    browser.post("/ui/login", data={"key": lead_key, "csrf": csrf})
    first = browser.get(f"/ui/cubes/{team.cube}/review")
    assert first.status_code == 200 and late.content not in first.text
    assert first.text.count("routine note number") == 50
    more = re.search(r'href="\?offset=(\d+)">later', first.text)
    assert more is not None
    second = browser.get(f"/ui/cubes/{team.cube}/review", params={"offset": more.group(1)})
    assert late.content in second.text and f"/review/{late.id}/approve" in second.text
    assert "earlier" in second.text
