"""PII redaction at ingest: the detectors on the written set, and the policy applied on every
local write path before anything is stored, queued or embedded — proven by the bytes on disk."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cubemem import InvalidInputError, MemCube, MemoryOS, RedactionPolicy
from cubemem.bench.redaction import DATA, evaluate
from cubemem.redact import Redactor

SECRET_EMAIL = "zq7.ana.souza@example.com"
SECRET_CARD = "4111 1111 1111 1111"
SECRET_KEY = "sk-proj-Zq7Ab12Cd34Ef56Gh78Ij90KlMnOp"


def _bytes_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_every_labelled_item_of_the_written_set_is_found_and_no_look_alike():
    """The set (``cubemem/bench/data/pii.json``): each kind in the forms people write it, and
    look-alikes that are not personal data (order numbers, versions, digests, dates)."""
    report = evaluate(json.loads(DATA.read_text()), hard=False)
    assert report["overall"]["recall"] == 1.0, report["missed"]
    assert report["overall"]["precision"] == 1.0, report["false_positives"]
    assert set(report["by_kind"]) == {
        "email", "phone", "card", "iban", "national_id", "ip", "api_key"
    }  # fmt: skip


def test_mask_drop_and_hash():
    text = f"mail {SECRET_EMAIL} or call +1 650-253-0000, card {SECRET_CARD}"
    masked = Redactor(RedactionPolicy.all("mask")).text(text)
    assert masked == "mail [EMAIL] or call [PHONE], card [CARD]"
    dropped = Redactor(RedactionPolicy.all("drop")).text(text)
    assert dropped == "mail or call , card "
    policy = RedactionPolicy.all("hash")
    once, again = Redactor(policy).text(text), Redactor(policy).text(f"x {SECRET_EMAIL}")
    token = once.split()[1]
    assert token.startswith("[EMAIL:") and again == f"x {token}"  # the same value, the same token
    other = Redactor(RedactionPolicy.all("hash")).text(f"x {SECRET_EMAIL}")
    assert other != again  # another cube's salt
    only = Redactor(RedactionPolicy(email="mask")).text(text)
    assert only == f"mail [EMAIL] or call +1 650-253-0000, card {SECRET_CARD}"


def test_a_policy_redacts_every_write_path_before_anything_is_stored(tmp_path, embedder):
    path = tmp_path / "cube"
    with MemCube.create(path, embedder=embedder) as cube:
        cube.maintenance.set_redaction(RedactionPolicy.all("mask"))
        added = cube.add(f"Ana's e-mail is {SECRET_EMAIL}", metadata={"card": SECRET_CARD})
        (turn,) = cube.add_messages([{"speaker": "Ana", "text": f"my key is {SECRET_KEY}"}])
        put = cube.put(
            ("prefs",), "billing", f"pays by {SECRET_CARD}", value={"mail": SECRET_EMAIL}
        )
        queued = cube.add(f"write to {SECRET_EMAIL} later", wait=False)
        plain = cube.add("Ana likes tea")
        edited = cube.update(plain.id, f"Ana likes tea; {SECRET_EMAIL}")
        cube.scheduler.wait([queued], 30)
        assert added.content == "Ana's e-mail is [EMAIL]" and added.metadata == {"card": "[CARD]"}
        assert turn.content == "my key is [API_KEY]"
        assert put.content == "pays by [CARD]" and put.value == {"mail": "[EMAIL]"}
        assert cube.get(queued).content == "write to [EMAIL] later"
        assert edited.content == "Ana likes tea; [EMAIL]"
        assert [h.content for h in cube.search("Ana's e-mail", k=1)] == [added.content]
        assert cube.maintenance.redactions == {"email": 4, "card": 2, "api_key": 1}
    on_disk = _bytes_of(path)
    for secret in (SECRET_EMAIL, SECRET_CARD, SECRET_KEY, "4111111111111111"):
        assert secret.encode() not in on_disk  # nor in the queue, the WAL, the vectors


def test_a_policy_set_by_another_process_applies_from_the_next_write(tmp_path, embedder):
    path = tmp_path / "cube"
    with (
        MemCube.create(path, embedder=embedder) as one,
        MemCube.open(path, embedder=embedder) as two,
    ):
        assert two.add(f"before {SECRET_EMAIL}").content == f"before {SECRET_EMAIL}"
        one.maintenance.set_redaction({"email": "mask"})
        assert two.maintenance.redaction.email == "mask"
        assert two.add(f"after {SECRET_EMAIL}").content == "after [EMAIL]"
        one.maintenance.set_redaction(None)
        assert two.add(f"off {SECRET_EMAIL}").content == f"off {SECRET_EMAIL}"


def test_a_bad_policy_is_refused_and_the_old_one_kept(cube):
    cube.maintenance.set_redaction({"email": "mask"})
    for bad in ({"email": "shred"}, {"phone_region": "Portugal"}, {"fax": "mask"}, "mask"):
        with pytest.raises(InvalidInputError):
            cube.maintenance.set_redaction(bad)
    assert cube.maintenance.redaction.email == "mask"
    assert cube.add(f"x {SECRET_EMAIL}").content == "x [EMAIL]"


def test_an_agents_write_is_audited_with_counts_never_the_value(tmp_path, embedder):
    with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
        os_.create_cube("team")
        os_.open_cube("team").maintenance.set_redaction(RedactionPolicy.all("mask"))
        os_.access.create_agent("bot", trust=0.9)
        os_.access.grant("bot", "team", "write")
        bot = os_.as_agent("bot").open_cube("team")
        item = bot.add(f"Ana: {SECRET_EMAIL}, {SECRET_CARD}")
        assert item.content == "Ana: [EMAIL], [CARD]"
        (entry,) = [e for e in os_.access.audit(cube="team") if e.action == "redact"]
        assert entry.agent == "bot" and entry.detail == {"counts": {"card": 1, "email": 1}}
        log = json.dumps([e.model_dump(mode="json") for e in os_.access.audit(cube="team")])
        assert SECRET_EMAIL not in log and "4111" not in log


def test_the_cli_ingest_is_redacted(tmp_path, embedder):
    from typer.testing import CliRunner

    from cubemem.cli import app

    path = tmp_path / "memory"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    done = runner.invoke(app, ["redaction", "set", "-c", str(path), "--all", "mask"])
    assert done.exit_code == 0, done.output
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"speaker": "Ana", "text": f"mail me at {SECRET_EMAIL}"}) + "\n")
    assert runner.invoke(app, ["ingest", str(chat), "-c", str(path)]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["list", "-c", str(path), "--json"]).stdout)
    assert [m["content"] for m in listed] == ["mail me at [EMAIL]"]
    shown = runner.invoke(app, ["redaction", "show", "-c", str(path), "--json"])
    assert json.loads(shown.stdout)["email"] == "mask"
    assert SECRET_EMAIL.encode() not in _bytes_of(path)


def test_counts_are_by_kind():
    counts: Counter[str] = Counter()
    Redactor(RedactionPolicy.all("mask")).text(f"{SECRET_EMAIL} {SECRET_EMAIL} 8.8.8.8", counts)
    assert counts == {"email": 2, "ip": 1}
