"""The peer comparison and the tuning script run their real code paths on a slice."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cubemem.bench import locomo
from cubemem.retrieve import RetrievalConfig

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "locomo_mini.json"  # written for the tests


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_compare_runs_every_system_on_a_slice(tmp_path, embedder):
    compare = _load("compare_locomo")
    out, png = tmp_path / "results.json", tmp_path / "bars.png"
    compare.main(
        ["--data", str(DATA), "--conversations", "0", "--max-questions", "12", "--k", "1,5,10",
         "--json", str(out), "--plot", str(png)]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["conversations"] == [0]
    results = report["results"]
    assert [r["system"] for r in results] == list(compare.SYSTEMS)
    for r in results:
        assert r["questions"] == 12
        assert 0.0 <= r["recall"]["1"] <= r["recall"]["5"] <= r["recall"]["10"] <= 1.0
        assert r["search_ms"]["p95"] > 0 and r["ingest_items_per_s"] > 0
    assert any(r["recall"]["10"] > 0 for r in results)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_benchmark_docs_show_exactly_the_measured_results():
    """docs/benchmarks.md is rendered from docs/results/*.json, never typed by hand."""
    render = _load("render_docs")
    for page in render.PAGES:
        text = page.read_text(encoding="utf-8")
        assert render.render(text) == text, (
            f"{page.name}: run uv run python benchmarks/render_docs.py"
        )


@pytest.mark.slow
def test_tuning_scores_each_config_with_real_searches(embedder):
    tune = _load("tune_retrieval")
    data = locomo.load(DATA)[:1]
    configs = [RetrievalConfig(), RetrievalConfig(lexical_weight=0.0, neighbour_share=0.0)]
    n = len(locomo.questions(data[0]))
    for mode in ("raw", "observations"):
        scores = tune.evaluate(data, [0], configs, mode)
        assert all(len(scores[i][0]) == n for i in range(2))
        means = [tune.mean(scores[i][0], 10) for i in range(2)]
        assert all(0.0 < m <= 1.0 for m in means)
        if mode == "raw":  # a handful of observations may rank the same either way
            assert scores[0][0] != scores[1][0], "the configuration must change what is found"
