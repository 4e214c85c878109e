"""The fact-set benchmark runs its real searches: one cube per size, three fusion settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cubemem import MemCube
from cubemem.bench import facts, locomo
from cubemem.cli import app
from cubemem.errors import InvalidInputError
from cubemem.model import MemoryInput, Scope


def test_the_bundled_fact_set_is_whole():
    data = facts.load()
    assert len(data.facts) == len(data.questions) == 186
    assert len({f["id"] for f in data.facts}) == 186
    assert {a for _, a in data.questions} == {f["id"] for f in data.facts}


def test_small_cubes_are_answered_by_every_system(embedder):
    report = facts.run([10, 30], embedder=embedder)
    rows = {(r["memories"], r["system"]): r for r in report["results"]}
    assert set(rows) == {(n, s) for n in (10, 30) for s in facts.SYSTEMS}
    for row in rows.values():
        assert row["questions"] == row["memories"]
        assert 0.0 <= row["hit@1"] <= row["hit@3"] <= 1.0
    # the data is answerable: dense search alone finds nearly every fact first
    assert rows[(30, "dense")]["hit@1"] >= 0.9
    assert rows[(30, "default")]["hit@3"] >= 0.9


def test_the_default_fusion_ranks_facts_at_least_as_well_as_either_retriever_alone(embedder):
    """The retrieval target on short facts, at every cube size from ten memories up: the
    default ranks the one right fact first at least as often as dense search or BM25 alone,
    and its MRR@10 is not below either."""
    report = facts.run([10, 30, 100, None], embedder=embedder)
    rows = {(r["memories"], r["system"]): r for r in report["results"]}
    for size in (10, 30, 100, 186):
        default = rows[(size, "default")]
        for alone in ("dense", "bm25"):
            other = rows[(size, alone)]
            assert default["hit@1"] >= other["hit@1"], (size, alone, default, other)
            assert default["mrr@10"] >= other["mrr@10"], (size, alone, default, other)


def test_facts_beside_conversation_turns_still_rank_first(tmp_path, embedder):
    """A cube holding a conversation's turns and the short facts together: the default ranks
    the fact questions' one right fact first at least as often as dense search alone."""
    conversation = locomo.load(Path(__file__).resolve().parents[1] / "data" / "locomo_mini.json")[0]
    data = facts.load()
    cube = MemCube.create(tmp_path / "mixed", embedder=embedder)
    locomo.ingest(cube, conversation, "raw")
    items = cube.add(
        [MemoryInput(content=f["text"], scope=Scope(user=f["user"])) for f in data.facts]
    )
    by_fact = {f["id"]: item.id for f, item in zip(data.facts, items, strict=True)}
    first: dict[str, int] = {}
    for system in ("default", "dense", "bm25"):
        cube.maintenance.retrieval = facts.SYSTEMS[system]
        first[system] = sum(cube.search(q, k=1)[0].id == by_fact[a] for q, a in data.questions)
    cube.close()
    assert first["default"] >= first["dense"] > first["bm25"], first


def test_cli_writes_the_report(tmp_path, embedder):
    out = tmp_path / "facts.json"
    result = CliRunner().invoke(app, ["bench", "facts", "--sizes", "10", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert [r["system"] for r in json.loads(out.read_text())["results"]] == list(facts.SYSTEMS)
    bad = CliRunner().invoke(app, ["bench", "facts", "--sizes", "ten"])
    assert bad.exit_code == 2 and "--sizes" in bad.output


def test_bad_inputs(tmp_path):
    with pytest.raises(InvalidInputError, match="positive"):
        facts.run([0])
    (tmp_path / "x.json").write_text(
        '{"facts": [{"id": "a", "text": "t", "user": null}], '
        '"questions": [{"question": "q", "answer": "b"}]}'
    )
    with pytest.raises(InvalidInputError, match="unknown facts"):
        facts.load(tmp_path / "x.json")
