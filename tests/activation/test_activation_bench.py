"""``cubemem bench activation`` runs its real code path (small prefixes; no timing asserts)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cubemem.cli import app


def test_cli_reports_each_prefix(tmp_path):
    out = tmp_path / "activation.json"
    args = ["bench", "activation", "--prefix-tokens", "16,48", "--repeats", "1", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert 40e6 < report["model_params"] < 60e6
    assert [r["prefix_tokens"] for r in report["results"]] == [16, 48]
    for r in report["results"]:
        assert r["greedy_identical"] is True
        assert r["ttft_ms_prefill"] > 0 and r["ttft_ms_injected"] > 0 and r["block_bytes"] > 0
        comp = r["composition"]
        assert comp["sequential"]["max_logit_diff"] < 1e-3
        assert set(comp) == {"naive", "rotated", "sequential"}


def test_cli_rejects_bad_prefix_lengths():
    result = CliRunner().invoke(app, ["bench", "activation", "--prefix-tokens", "0"])
    assert result.exit_code == 2
    assert "positive ints" in result.output


def test_bench_parametric_trains_and_scores_three_ways(tmp_path):
    out = tmp_path / "parametric.json"
    args = ["bench", "parametric", "--facts", "4", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["facts"] == 4 and report["held_out_questions"] == 8
    assert set(report["recall_held_out"]) == {"base", "plaintext", "adapter"}
    assert report["recall_trained_phrasing_adapter"] >= 0.75  # memorised (fixed seed, CPU)
    training = report["training"]
    assert training["loss_last"] < training["loss_first"] / 4
    assert len(report["loss_curve"]) == training["epochs"] == 30
    assert report["prompt_tokens_saved_per_turn"] > 0 and training["seconds_per_memory"] > 0


def test_bench_parametric_rejects_bad_settings():
    result = CliRunner().invoke(app, ["bench", "parametric", "--facts", "0"])
    assert result.exit_code == 2 and "--facts" in result.output
    result = CliRunner().invoke(app, ["bench", "parametric", "--epochs", "0"])
    assert result.exit_code == 2 and "epochs" in result.output
