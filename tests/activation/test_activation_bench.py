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
