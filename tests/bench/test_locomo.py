"""The LoCoMo benchmark runs real ingestion and real searches on a slice of the dev file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cubemem.bench import locomo
from cubemem.cli import app
from cubemem.errors import InvalidInputError

DATA = Path(__file__).resolve().parents[1] / "data" / "locomo_mini.json"  # written for the tests
KEYS = [
    "dataset",
    "mode",
    "conversations",
    "questions",
    "recall",
    "recall_by_category",
    "search_ms",
    "ingest_items_per_s",
    "graph_off",
    "recall_by_ability",
    "prompt",
    "tokens_per_question",
]


@pytest.fixture(scope="module")
def sample():
    return locomo.load(DATA)[0]


def test_parsing(sample):
    sessions = locomo.sessions(sample)
    assert sessions[0][0] == "session_1" and sessions[0][1].year == 2023
    assert sessions[0][2][0]["id"] == "D1:1"
    assert any("[shares a photo:" in m["text"] for _, _, ms in sessions for m in ms)
    facts = locomo.observations(sample)
    assert facts and all(f.source_ids for f in facts[:20])
    qs = locomo.questions(sample)
    assert qs and {q.category for q in qs} <= {1, 2, 3, 4}


def test_recall_at():
    hits = [["D1:1"], ["D1:2", "D1:3"], ["D2:1"]]
    assert locomo.recall_at(hits, frozenset({"D1:3", "D2:1"}), 1) == 0.0
    assert locomo.recall_at(hits, frozenset({"D1:3", "D2:1"}), 2) == 0.5
    assert locomo.recall_at(hits, frozenset({"D1:3", "D2:1"}), 3) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["raw", "observations", "both"])
def test_cli_report_on_one_conversation(tmp_path, embedder, mode):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["bench", "locomo", "--data", str(DATA), "--conversations", "0", "--mode", mode,
         "--k", "1,5,10", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report) == KEYS
    assert report["mode"] == mode and report["conversations"] == [0]
    assert report["questions"] == len(locomo.questions(locomo.load(DATA)[0]))
    recall = report["recall"]
    assert list(recall) == ["1", "5", "10"]
    assert 0.0 <= recall["1"] <= recall["5"] <= recall["10"] <= 1.0
    assert recall["10"] > 0.3, "searches that found nothing would score 0"
    assert set(report["recall_by_category"]) == {"1", "2", "3", "4"}
    off = report["graph_off"]  # the same questions with the entity signal off
    assert set(off) == {"recall", "recall_by_category"} and list(off["recall"]) == ["1", "5", "10"]
    assert report["search_ms"]["p50"] > 0 and report["ingest_items_per_s"] > 0
    tokens = report["tokens_per_question"]
    assert 0 < tokens["1"] <= tokens["5"] <= tokens["10"]
    shown = report["prompt"]  # what the middleware's defaults would inject
    assert shown["k"] == 5 and 0 <= shown["mean_injected"] <= 5
    assert 0 <= shown["injected_recall"] <= recall["10"] and 0 <= shown["precision"] <= 1
    assert 0 <= shown["relevance_auc"] <= 1 and set(shown["by_category"]) == {"1", "2", "3", "4"}


def test_prompt_figures_by_hand():
    """Two questions, the middleware's reading of their results (k=2, min_score=0.5)."""
    from cubemem.bench import prompt

    one = prompt.Asked(frozenset({"D1:1"}), [(["D1:1"], 0.9), (["D1:2"], 0.6), (["D1:3"], 0.2)], 4)
    two = prompt.Asked(frozenset({"D2:1", "D2:2"}), [(["D2:9"], 0.4), (["D2:1"], 0.3)], 1)
    lost = prompt.Asked(frozenset(), [(["D1:2"], 0.7), (["D1:3"], 0.1)])
    shown = prompt.report([one, two], [lost], [], k=2, min_score=0.5)
    assert shown["injected_recall"] == 0.5  # 1 of 1, then 0 of 2
    assert shown["mean_injected"] == 1.0 and shown["precision"] == 0.5
    assert shown["nothing_injected"] == 0.5
    assert shown["abstention"] == {"questions": 1, "mean_injected": 1.0, "anything_injected": 1.0}
    assert shown["other_conversation"] == {}
    # positives 0.9, 0.3; negatives 0.6, 0.2, 0.4, 0.7, 0.1: 0.9 beats all 5, 0.3 beats 2
    assert shown["relevance_auc"] == round(7 / 10, 4)
    assert prompt.auc([0.5], [0.5]) == 0.5 and prompt.auc([], [0.1]) is None


@pytest.mark.slow
def test_llm_mode_reports_extraction_cost(embedder):
    """The full pipeline on one conversation with a scripted chat model (a ChatClient)."""
    from cubemem.llm import Completion

    class Scripted:
        name = "scripted"

        def complete(self, messages, *, schema=None):
            facts = [{"text": "Caroline went to a support group", "source_ids": ["t1"]},
                     {"text": "A fact citing nothing", "source_ids": ["t999"]}]  # fmt: skip
            return Completion(json.dumps({"facts": facts}), prompt_tokens=50, completion_tokens=9)

    report = locomo.run(DATA, conversations=[0], mode="llm", llm=Scripted(), embedder=embedder)
    extraction = report["extraction"]
    assert extraction["model"] == "scripted" and extraction["calls"] >= 1
    assert extraction["facts"] == 2 * extraction["calls"]
    assert extraction["uncited_share"] == 0.5
    assert extraction["prompt_tokens_per_turn"] > 0 and report["recall"]["20"] > 0
    with pytest.raises(InvalidInputError, match="chat model"):
        locomo.run(DATA, conversations=[0], mode="llm")


def test_bad_arguments(tmp_path):
    with pytest.raises(InvalidInputError, match="out of range"):
        locomo.run(DATA, conversations=[99])
    with pytest.raises(InvalidInputError, match="mode"):
        locomo.run(DATA, mode="summaries")
    (tmp_path / "x.json").write_text('{"not": "a list"}')
    with pytest.raises(InvalidInputError, match="not a LoCoMo file"):
        locomo.load(tmp_path / "x.json")
