"""The answer-level harness (``cubemem bench qa``): its three loaders on small files written
in each format, its metrics and resumption with a scripted chat model, and the whole pipeline
end to end with a tiny real local model (scores meaningless, the code path real)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cubemem.bench import qa, qa_data, qa_prompts
from cubemem.bench.qa_systems import CubememSystem
from cubemem.cli import app
from cubemem.errors import BackendUnavailableError, InvalidInputError
from cubemem.llm import Completion

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = {
    "locomo": DATA / "locomo_mini.json",
    "longmemeval": DATA / "longmemeval_mini.json",
    "halumem": DATA / "halumem_mini.jsonl",
}


class Scripted:
    """A chat model that answers from a rule (what the test wants it to say), counting calls
    and reporting usage as an endpoint does; ``fail_after`` calls it raises (a rate limit the
    client's retries did not outlast)."""

    name = "scripted"

    def __init__(self, rule, fail_after: int | None = None) -> None:
        self.rule = rule
        self.calls = 0
        self.fail_after = fail_after

    def complete(self, messages, *, schema=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise BackendUnavailableError("429 Too Many Requests, retries exhausted")
        text = messages[-1]["content"]
        return Completion(self.rule(text), prompt_tokens=len(text) // 4, completion_tokens=3)


def _answers_then_judges(text: str) -> str:
    if "Memories:\n" in text:  # the answerer: repeat the best memory
        return text.split("Memories:\n")[1].split("\n")[0]
    if "CORRECT" in text:  # LoCoMo's judge
        return (
            '{"label": "CORRECT"}'
            if "Preikestolen" in text.split("Generated answer:")[1]
            else '{"label": "WRONG"}'
        )
    if "Answer yes or no only" in text:
        return "yes" if "border collie" in text.split("Model Response:")[1] else "no"
    if '"result"' in text:
        return (
            '{"result": "Correct"}'
            if "Lyon" in text.split("AI answer:")[1]
            else '{"result": "Omission"}'
        )
    if '"score"' in text:
        return '{"score": 2}'
    if '"accuracy_score"' in text:
        return '{"accuracy_score": 2, "is_included_in_golden_memories": "true"}'
    return '{"evaluation_result": "Correct"}'


def test_the_three_loaders_read_their_formats():
    (conv,) = qa_data.load("locomo", FILES["locomo"])
    assert conv.id == "mini-1" and conv.sessions[0].when is not None
    assert {q.category for q in conv.questions} <= set(qa_data.locomo.CATEGORY_NAMES.values())
    lme = qa_data.load("longmemeval", FILES["longmemeval"])
    assert [c.id for c in lme] == ["q1", "q2", "q3_abs"]
    assert lme[2].questions[0].abstention and not lme[0].questions[0].abstention
    assert lme[1].questions[0].category == "knowledge-update"
    assert lme[0].sessions[0].turns[0].text.startswith("I just adopted")
    assert lme[0].questions[0].asked_at.year == 2023
    (user,) = qa_data.load("halumem", FILES["halumem"])
    assert len(user.sessions) == 3 and len(user.questions) == 2
    assert [p.source for p in user.points["s0"]][-1] == "interference"
    assert user.points["s1"][0].is_update and user.points["s1"][0].original
    assert "s2" not in user.points  # a generated-QA session: dialogue only
    for name, path in FILES.items():
        other = next(n for n in FILES if n != name)
        with pytest.raises(InvalidInputError):
            qa_data.load(other, path)
    with pytest.raises(InvalidInputError, match="dataset"):
        qa_data.load("squad", FILES["locomo"])


def test_the_published_judge_prompts_are_whole():
    assert "be generous with your grading" in qa_prompts.LOCOMO_JUDGE
    assert "{question}" in qa_prompts.LOCOMO_JUDGE and '"label"' in qa_prompts.LOCOMO_JUDGE
    for template in [*qa_prompts.LONGMEMEVAL_JUDGE.values(), qa_prompts.LONGMEMEVAL_ABSTENTION]:
        filled = template.format("Q?", "A.", "R.")
        assert "Q?" in filled and "A." in filled and filled.endswith("Answer yes or no only.")
    assert "off-by-one" in qa_prompts.LONGMEMEVAL_JUDGE["temporal-reasoning"]


@pytest.mark.parametrize("dataset", ["locomo", "longmemeval", "halumem"])
def test_each_dataset_is_answered_judged_and_reported(tmp_path, embedder, dataset):
    model = Scripted(_answers_then_judges)
    clients = qa.Clients(model, model, price_in=1.0, price_out=2.0)
    report = qa.run(
        dataset,
        FILES[dataset],
        CubememSystem(embedder),
        clients,
        k=3,
        workdir=tmp_path / "cubes",
        checkpoint=tmp_path / "run.jsonl",
    )
    asked = sum(len(c.questions) for c in qa_data.load(dataset, FILES[dataset]))
    assert report["questions"] == asked and 0 <= report["score"] <= 1
    assert report["unparsed_verdicts"] == 0
    assert sum(c["questions"] for c in report["by_category"].values()) == asked
    assert report["context_tokens_per_question"] > 0
    assert report["latency_ms"]["search"]["p95"] >= report["latency_ms"]["search"]["p50"] > 0
    assert report["tokens"]["prompt"] > 0 and report["cost_usd"] > 0
    if dataset == "longmemeval":  # the dog question is right, the update and abstention not
        assert report["by_category"]["single-session-user"]["score"] == 1.0
    if dataset == "halumem":
        scores = report["halumem"]
        assert scores["qa"]["correct"] == 0.5 and scores["qa"]["omission"] == 0.5
        assert scores["extraction"]["recall"] == 1.0 and scores["update"]["correct"] == 1.0


def test_a_run_cut_short_resumes_where_it_stopped(tmp_path, embedder):
    def run(model):
        return qa.run(
            "longmemeval",
            FILES["longmemeval"],
            CubememSystem(embedder),
            qa.Clients(model, model),
            k=3,
            workdir=tmp_path / "cubes",
            checkpoint=tmp_path / "run.jsonl",
        )

    with pytest.raises(BackendUnavailableError):
        run(Scripted(_answers_then_judges, fail_after=3))  # q1 answered and judged, q2 not
    kept = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept if r["kind"] == "question"] == ["q1"]
    again = Scripted(_answers_then_judges)
    report = run(again)
    assert report["questions"] == 3 and again.calls == 4  # only q2 and q3: answer + judge each
    ids = [json.loads(line)["id"] for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids))  # nothing twice
    assert run(Scripted(_answers_then_judges)) == report  # all done: nothing asked again


def _tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "activation"))
    from tiny_lm import make_model, make_tokenizer

    tokenizer = make_tokenizer()
    make_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_whole_pipeline_runs_offline_on_a_tiny_local_model(tmp_path, embedder):
    """`cubemem bench qa` with transformers:PATH for answerer and judge, end to end."""
    model = _tiny_model(tmp_path / "tiny")
    out = tmp_path / "qa.json"
    args = [
        "bench", "qa", "--dataset", "locomo", "--data", str(FILES["locomo"]),
        "--llm-model", f"transformers:{model}", "--max-tokens", "8", "--k", "3",
        "--workdir", str(tmp_path / "run"), "--json", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    (conv,) = qa_data.load("locomo", FILES["locomo"])
    assert report["questions"] == len(conv.questions)
    assert report["answer_model"].startswith("transformers:")
    assert report["tokens"]["prompt"] > 0 and report["cost_usd"] is None
    again = CliRunner().invoke(app, args)  # resumed: every question is done already
    assert again.exit_code == 0 and json.loads(out.read_text())["questions"] == report["questions"]
    bad = CliRunner().invoke(app, [*args[:2], "--dataset", "nope", *args[4:]])
    assert bad.exit_code == 2 and "dataset" in bad.output


@pytest.mark.parametrize("peer", ["LangGraphSystem", "Mem0System"])
def test_a_peer_runs_through_the_same_answerer_and_judge(tmp_path, peer):
    """LangGraph's store and mem0 (benchmarks/qa_peers.py) on the same harness."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "qa_peers.py"
    spec = importlib.util.spec_from_file_location("qa_peers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = Scripted(_answers_then_judges)
    report = qa.run(
        "longmemeval",
        FILES["longmemeval"],
        getattr(module, peer)(),
        qa.Clients(model, model),
        k=3,
        workdir=tmp_path / "peer",
        checkpoint=tmp_path / "peer.jsonl",
    )
    assert report["system"] in ("langgraph", "mem0") and report["questions"] == 3
    assert report["by_category"]["single-session-user"]["score"] == 1.0
