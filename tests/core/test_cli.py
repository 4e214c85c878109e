"""The ``cubemem`` command, run in-process through typer's runner on real cubes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cubemem.cli import app

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture
def cube_path(tmp_path, embedder):
    path = tmp_path / "memory"
    assert invoke("init", path, "--name", "mine").exit_code == 0
    return path


def test_init_add_search_show_stats(cube_path):
    added = invoke("add", "Ana is allergic to peanuts", "-c", cube_path, "--user", "ana")
    assert added.exit_code == 0, added.output
    memory_id = added.output.strip()
    found = invoke("search", "what is Ana allergic to?", "-c", cube_path, "--json")
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)
    assert hits[0]["item"]["id"] == memory_id
    shown = invoke("show", memory_id, "-c", cube_path, "--history")
    assert shown.exit_code == 0 and "peanuts" in shown.output
    stats = json.loads(invoke("stats", "-c", cube_path).output)
    assert stats["cube"] == "mine" and stats["memories"] == 1


def test_ingest_jsonl_groups_sessions(cube_path, tmp_path):
    chat = tmp_path / "chat.jsonl"
    lines = [
        {"session": "s1", "speaker": "Ana", "text": "I adopted a cat called Miso", "id": "1"},
        {"session": "s1", "role": "Ben", "content": "What colour is she?", "id": "2"},
        {"session": "s2", "speaker": "Ana", "text": "Miso is grey", "id": "3"},
    ]
    chat.write_text("\n".join(json.dumps(line) for line in lines))
    result = invoke("ingest", chat, "-c", cube_path, "--timestamp", "2024-01-01T10:00:00")
    assert result.exit_code == 0, result.output
    assert "3 messages in 2 session(s) into" in result.output and "3 added" in result.output
    hits = json.loads(invoke("search", "cat", "-c", cube_path, "--session", "s2", "--json").output)
    assert [h["item"]["provenance"]["source_ids"] for h in hits] == [["3"]]


def test_ingest_json_sessions_and_table_output(cube_path, tmp_path):
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps(
            {
                "sessions": [
                    {
                        "session": "s1",
                        "timestamp": "2024-03-02T19:30:00",
                        "messages": [{"speaker": "Ana", "text": "I play the cello", "id": "a"}],
                    }
                ]
            }
        )
    )
    assert invoke("ingest", chat, "-c", cube_path).exit_code == 0
    table = invoke("search", "cello", "-c", cube_path)
    assert "I play the cello" in table.output and "2024-03-02" in table.output


def test_export_import(cube_path, tmp_path):
    invoke("add", "kept across machines", "-c", cube_path)
    assert invoke("export", tmp_path / "c.zip", "-c", cube_path).exit_code == 0
    result = invoke("import", tmp_path / "c.zip", tmp_path / "copy")
    assert result.exit_code == 0 and "imported 1 active memories" in result.output


def test_errors_are_one_line_and_exit_2(cube_path, tmp_path):
    result = invoke("search", "x", "-c", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "is not a cube" in result.output and "Traceback" not in result.output
    assert invoke("add", "   ", "-c", cube_path).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert invoke("ingest", bad, "-c", cube_path).exit_code == 2


def test_demo_runs_offline_and_prints_hits(embedder):
    result = invoke("demo")
    assert result.exit_code == 0, result.output
    assert "What is Ana allergic to?" in result.output
    assert "allergic to peanuts" in result.output
    assert "27 memories" in result.output


def test_list_update_delete_and_filters(cube_path):
    ids = {}
    for text, user, agent, tag in [
        ("Ana likes tea", "ana", "chef", "food"),
        ("Ana plays chess", "ana", "coach", "games"),
        ("Ben likes tea", "ben", "chef", "food"),
    ]:
        out = invoke("add", text, "-c", cube_path, "--user", user, "--agent", agent, "--tag", tag)
        ids[text] = out.stdout.strip()
    listed = json.loads(invoke("list", "-c", cube_path, "--user", "ana", "--json").stdout)
    assert [m["content"] for m in listed] == ["Ana likes tea", "Ana plays chess"]
    listed = json.loads(invoke("list", "-c", cube_path, "--tag", "food", "--json").stdout)
    assert [m["content"] for m in listed] == ["Ana likes tea", "Ben likes tea"]
    hits = json.loads(
        invoke(
            "search", "tea", "-c", cube_path, "--agent", "chef", "--user", "ben", "--json"
        ).stdout
    )
    assert [h["item"]["content"] for h in hits] == ["Ben likes tea"]
    hits = json.loads(invoke("search", "tea", "-c", cube_path, "--tag", "games", "--json").stdout)
    assert [h["item"]["content"] for h in hits] == ["Ana plays chess"]
    updated = invoke(
        "update", ids["Ana likes tea"], "Ana likes green tea", "-c", cube_path, "--json"
    )
    assert json.loads(updated.stdout)["version"] == 2
    stale = invoke(
        "update", ids["Ana likes tea"], "Ana likes black tea", "-c", cube_path,
        "--expected-version", "1",
    )  # fmt: skip
    assert stale.exit_code == 2 and "version" in stale.output
    history = json.loads(invoke("show", ids["Ana likes tea"], "-c", cube_path, "--history").stdout)
    assert [v["content"] for v in history] == ["Ana likes tea", "Ana likes green tea"]
    shown = json.loads(invoke("show", ids["Ana likes tea"], "-c", cube_path).stdout)
    assert shown["content"] == "Ana likes green tea"
    deleted = invoke("delete", ids["Ben likes tea"], "-c", cube_path, "--json")
    assert json.loads(deleted.stdout) == {
        "id": ids["Ben likes tea"],
        "deleted": True,
        "purged": False,
    }
    assert len(json.loads(invoke("list", "-c", cube_path, "--json").stdout)) == 2
    gone = json.loads(invoke("list", "-c", cube_path, "--status", "deleted", "--json").stdout)
    assert [m["content"] for m in gone] == ["Ben likes tea"]
    assert invoke("delete", "no-such-id", "-c", cube_path).exit_code == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_ingest_is_idempotent_by_message_id(cube_path, tmp_path, suffix):
    chat = tmp_path / f"chat{suffix}"
    lines = [
        {"session": "s1", "speaker": "Ana", "text": "I adopted a cat called Miso", "id": "1"},
        {"session": "s2", "speaker": "Ana", "text": "Miso is grey", "id": "3"},
        {"session": "s1", "speaker": "Ben", "text": "What colour is she?", "id": "2"},
    ]
    chat.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    first = json.loads(invoke("ingest", chat, "-c", cube_path, "--json").stdout)
    assert (first["added"], first["sessions"]) == (3, 2)
    again = json.loads(invoke("ingest", chat, "-c", cube_path, "--json").stdout)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 3)
    lines[1]["text"] = "Miso is grey and white"
    chat.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    changed = json.loads(invoke("ingest", chat, "-c", cube_path, "--json").stdout)
    assert (changed["added"], changed["updated"], changed["unchanged"]) == (0, 1, 2)
    memories = json.loads(invoke("list", "-c", cube_path, "--json").stdout)
    assert len(memories) == 3
    (miso,) = [m for m in memories if m["provenance"]["source_ids"] == ["3"]]
    assert (miso["content"], miso["version"]) == ("Miso is grey and white", 2)


def test_ingest_checks_the_whole_file_first_and_names_the_line(cube_path, tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        '{"session": "s1", "speaker": "Ana", "text": "first", "id": "1"}\n'
        "\n"
        '{"session": "s2", "speaker": "Ana", "text": "second", "id": "2"}\n'
        '{"session": "s2", "speaker": "Ana"}\n'
    )
    result = invoke("ingest", chat, "-c", cube_path)
    assert result.exit_code == 2
    assert "chat.jsonl, line 4: text: Field required" in result.output
    assert json.loads(invoke("list", "-c", cube_path, "--json").stdout) == []  # nothing written
    chat.write_text('{"speaker": "Ana", "text": "ok"}\n{"speaker": "Ana", "text": oops}\n')
    assert "line 2: not valid JSON" in invoke("ingest", chat, "-c", cube_path).output
    doc = tmp_path / "chat.json"
    doc.write_text('[\n  {"speaker": "Ana", "text": "ok"},\n  {"speaker": "Ana" "text": "x"}\n]')
    assert "chat.json, line 3: not valid JSON" in invoke("ingest", doc, "-c", cube_path).output
    other = tmp_path / "chat.csv"
    other.write_text("a,b")
    assert ".jsonl and .ndjson" in invoke("ingest", other, "-c", cube_path).output


def test_cli_errors_speak_cli(tmp_path, cube_path):
    again = invoke("init", cube_path)
    assert again.exit_code == 2 and "already a cube" in again.output
    missing = invoke("stats", "-c", tmp_path / "nowhere")
    assert "cubemem init" in missing.output and "MemCube" not in missing.output


def test_commands_that_do_not_embed_never_import_torch(cube_path, tmp_path):
    """init, stats, show, list, export and delete run without torch or the model, and
    without the server's or the search's libraries (cold start)."""
    import subprocess
    import sys

    memory_id = invoke("add", "Ana likes tea", "-c", cube_path).stdout.strip()
    script = (
        "import sys\n"
        "from cubemem.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    heavy = {'torch', 'sentence_transformers', 'scipy', 'bm25s', 'fastapi', 'uvicorn'}\n"
        "    if sys.argv[1] != 'init':  # a new cube makes its vector index; the others skip it\n"
        "        heavy |= {'chromadb', 'httpx'}\n"
        "    loaded = sorted(heavy & set(sys.modules))\n"
        "    print(f'LOADED {loaded}' if loaded else 'NO-TORCH', file=sys.stderr)\n"
    )
    for args in (
        ["init", tmp_path / "new", "--json"],
        ["stats"],
        ["show", memory_id],
        ["show", memory_id, "--history"],
        ["list", "--json"],
        ["export", str(tmp_path / "out.zip")],
        ["delete", memory_id],
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                *args,
                *([] if args[0] == "init" else ["-c", cube_path]),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().endswith("NO-TORCH"), (args, done.stderr)


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_speaks_the_shell_not_python():
    """Every command's help shows TEXT, INTEGER, PATH and bare flags, never <str> or <bool>."""
    import typer.main

    for path, _ in _commands(typer.main.get_command(app)):
        shown = invoke(*path, "--help")
        assert shown.exit_code == 0, (path, shown.output)
        for python in ("<str>", "<bool>", "<int", "<float>", "<path>", "list["):
            assert python not in shown.output, (path, python, shown.output)


def test_local_commands_that_print_data_take_json(cube_path, tmp_path):
    memory_id = invoke("add", "Ana likes tea", "-c", cube_path).stdout.strip()
    for args in (
        ["init", tmp_path / "other"],
        ["stats", "-c", cube_path],
        ["show", memory_id, "-c", cube_path],
        ["show", memory_id, "--history", "-c", cube_path],
        ["list", "-c", cube_path],
        ["search", "tea", "-c", cube_path],
        ["update", memory_id, "Ana likes green tea", "-c", cube_path],
        ["export", tmp_path / "out.zip", "-c", cube_path],
        ["import", tmp_path / "out.zip", tmp_path / "copy"],
        ["delete", memory_id, "-c", cube_path],
    ):
        done = invoke(*args, "--json")
        assert done.exit_code == 0, (args, done.output)
        json.loads(done.stdout)


def test_forget_by_user_and_by_id(cube_path):
    ana = [invoke("add", t, "-c", cube_path, "--user", "ana").stdout.strip() for t in ("a1", "a2")]
    ben = invoke("add", "Ben likes tea", "-c", cube_path, "--user", "ben").stdout.strip()
    refused = invoke("forget", "-c", cube_path)
    assert refused.exit_code != 0 and "alone would erase" in refused.output
    gone = json.loads(invoke("forget", ana[0], "-c", cube_path, "--json").stdout)
    assert gone["ids"] == [ana[0]] and gone["count"] == 1
    gone = invoke("forget", "-c", cube_path, "--user", "ana")
    assert gone.exit_code == 0 and "forgot 1 memories" in gone.stdout
    listed = json.loads(invoke("list", "-c", cube_path, "--json").stdout)
    assert [m["id"] for m in listed] == [ben]
