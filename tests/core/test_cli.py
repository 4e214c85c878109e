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
