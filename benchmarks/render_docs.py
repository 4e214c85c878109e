"""Fill the tables of docs/benchmarks.md from the JSON the benchmark commands wrote.

    uv run python benchmarks/render_docs.py

Each table sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; a table whose JSON
is missing is left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
ACTIVATION_DOCS = ROOT / "docs" / "activation.md"
PARAMETRIC_DOCS = ROOT / "docs" / "parametric.md"
PAGES = (DOCS, ACTIVATION_DOCS, PARAMETRIC_DOCS)


def _load(name: str) -> Any:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _recall(recall: dict[str, float]) -> list[str]:
    return [f"{v:.3f}" for v in recall.values()]


def locomo() -> str | None:
    reports = [r for r in (_load("locomo_raw.json"), _load("locomo_observations.json")) if r]
    if not reports:
        return None
    ks = list(reports[0]["recall"])
    names = {"1": "multi-hop", "2": "temporal", "3": "open-domain", "4": "single-hop"}
    rows = []
    for r in reports:
        rows.append(
            [f"**{r['mode']}**, all", *_recall(r["recall"]), r["search_ms"]["p50"],
             r["search_ms"]["p95"], r["ingest_items_per_s"]]
        )  # fmt: skip
        for cat, recall in r["recall_by_category"].items():
            rows.append([f"{r['mode']}, {cat} {names[cat]}", *_recall(recall), "", "", ""])
        off = r.get("graph_off")
        if off:
            rows.append([f"{r['mode']}, all, graph off", *_recall(off["recall"]), "", "", ""])
            for cat, recall in off["recall_by_category"].items():
                rows.append(
                    [f"{r['mode']}, {cat} {names[cat]}, graph off", *_recall(recall), "", "", ""]
                )
    header = ["mode, questions", *(f"R@{k}" for k in ks), "p50 ms", "p95 ms", "ingest items/s"]
    note = f"{reports[0]['questions']} questions over conversations {reports[0]['conversations']}."
    return note + "\n\n" + _table(header, rows)


def compare() -> str | None:
    report = _load("locomo_compare.json")
    if not report:
        return None
    results = report["results"]
    ks = list(results[0]["recall"])
    rows = [
        [r["system"], *_recall(r["recall"]), r["search_ms"]["p50"], r["search_ms"]["p95"],
         r["ingest_items_per_s"]]
        for r in results
    ]  # fmt: skip
    header = ["system", *(f"R@{k}" for k in ks), "p50 ms", "p95 ms", "ingest items/s"]
    return (
        "```bash\nuv run python benchmarks/compare_locomo.py --data "
        "../shared/data/locomo/locomo_dev.json --json docs/results/locomo_compare.json "
        "--plot docs/img/locomo_compare.png\n```\n\n"
        f"{results[0]['questions']} questions, conversations {report['conversations']}, "
        "one run:\n\n" + _table(header, rows) + "\n\n"
        "![LoCoMo evidence recall by system](img/locomo_compare.png)"
    )


def ablation() -> str | None:
    report = _load("retrieval_ablation.json")
    if not report:
        return None
    modes = report["modes"]
    ks = list(next(iter(next(iter(modes.values())).values())))
    rows = [
        [mode, name, *_recall(recall)]
        for mode, by_name in modes.items()
        for name, recall in by_name.items()
    ]
    return _table(["mode", "retrieval", *(f"R@{k}" for k in ks)], rows)


def _knobs(chose: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in chose.items()) or "the default"


def loco() -> str | None:
    report = _load("retrieval_loco.json")
    if not report:
        return None
    out = []
    for mode, r in report["modes"].items():
        ks = list(r["loco_recall"])
        rows = [
            [h["conversation"], _knobs(h["chose"]), *_recall(h["recall"])] for h in r["held_out"]
        ]
        rows.append(["**all, held out**", "", *_recall(r["loco_recall"])])
        if r.get("default_in_sample"):
            rows.append(["default, in sample", "", *_recall(r["default_in_sample"])])
        spread = r["loco_spread_r10"]
        out.append(
            f"**{mode}** ({r['questions']} questions)\n\n"
            + _table(["held out", "chosen on the other five", *(f"R@{k}" for k in ks)], rows)
            + f"\n\nHeld-out R@10 ranges from {spread['min']:.3f} to {spread['max']:.3f} "
            "across conversations."
        )
    return "\n\n".join(out)


def graph() -> str | None:
    report = _load("graph_loco.json")
    if not report:
        return None
    r = report["modes"]["raw"]
    ks = list(r["loco_recall"])
    rows = [[h["conversation"], _knobs(h["chose"]), *_recall(h["recall"])] for h in r["held_out"]]
    rows.append(["**all, held out**", "", *_recall(r["loco_recall"])])
    for name, recall in r["loco_by_category"].items():
        rows.append([f"held out, {name}", "", *_recall(recall)])
    grid = sorted(r["in_sample_r10"].items(), key=lambda kv: -kv[1])
    in_sample = _table(
        ["configuration", "R@10 in sample"],
        [[_knobs(json.loads(k)), f"{v:.4f}"] for k, v in grid],
    )
    return (
        f"**raw** ({r['questions']} questions)\n\n"
        + _table(["held out", "chosen on the other five", *(f"R@{k}" for k in ks)], rows)
        + "\n\nEach configuration of the grid, in sample:\n\n"
        + in_sample
    )


def graph_cost() -> str | None:
    r = _load("graph_cost.json")
    if not r:
        return None
    on, off = r["search_ms"]["on"], r["search_ms"]["off"]
    rows = [
        ["ingest (s)", r["ingest_s"], "", ""],
        ["name extraction and resolution (s)", r["graph_s"], "", ""],
        ["ingest with the graph ÷ ingest", f"{r['ingest_with_graph_vs_ingest']}×", "", ""],
        ["search p50 / p95 (ms)", "", f"{on['p50']} / {on['p95']}", f"{off['p50']} / {off['p95']}"],
        ["search p95, on ÷ off", f"{r['p95_on_vs_off']}×", "", ""],
    ]
    note = f"{r['turns']} turns in {r['conversations']} conversations."
    text = note + "\n\n" + _table(["", "", "graph and time on", "off"], rows)
    scale = _load("graph_scale.json")
    if scale:
        before, after = scale["before"]["sizes"][0], scale["after"]["sizes"][0]
        lines = []
        for name, get in (
            ("index build s", lambda r: r["index_build_s"]),
            ("p95 ms, unfiltered", lambda r: r["search_ms"]["unfiltered"]["p95"]),
            ("p95 ms, one user", lambda r: r["search_ms"]["user"]["p95"]),
            ("p95 ms, user+tag", lambda r: r["search_ms"]["user+tag"]["p95"]),
            ("RSS MB", lambda r: r["rss_mb"]),
        ):
            lines.append([name, get(before), get(after), f"{get(after) / get(before):.2f}×"])
        text += (
            f"\n\nAt {after['items']:,} synthetic memories (`{scale['command']}`):\n\n"
            + _table(["", "before (no graph, no time words)", "after", "ratio"], lines)
        )
    return text


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report.get("results") or report["sizes"]  # "sizes": reports before 0.5


def scale() -> str | None:
    names = ("scale_curve.json", "scale.json", "scale_precomputed.json")
    reports = [r for r in map(_load, names) if r]
    if not reports:
        return None
    rows = []
    for report in reports:
        for r in _rows(report):
            ms, disk = r["search_ms"], r["disk_bytes_per_item"]
            rows.append(
                [report["embedder"], r.get("store", "sqlite"), f"{r['items']:,}",
                 r["ingest_items_per_s"], r["index_build_s"], r.get("open_s", "-"),
                 ms["unfiltered"]["p50"], ms["unfiltered"]["p95"], ms["user"]["p95"],
                 ms["user+tag"]["p95"], ms.get("after_add", {}).get("p95", "-"), r["rss_mb"],
                 "-" if disk is None else f"{disk:,.0f}"]
            )  # fmt: skip
    header = [
        "vectors", "store", "items", "ingest items/s", "index build s", "open s", "p50 ms",
        "p95 ms", "p95 ms, user", "p95 ms, user+tag", "p95 ms, after add", "RSS MB",
        "disk bytes/item",
    ]  # fmt: skip
    return _table(header, rows)


def queue() -> str | None:
    reports = [_load(f"scale_queue_{name}.json") for name in ("sqlite", "redis")]
    rows = [
        [r["queue"], f"{r['items']:,}", r["ack_ms"]["p50"], r["ack_ms"]["p95"],
         f"{r['acked_per_s']:,}", f"{r['indexed_per_s']:,}", f"{r['drained_per_s']:,}",
         f"{r['inline_batched_per_s']:,}", r["indexed_vs_inline"], r["drained_vs_inline"]]
        for report in reports if report for r in report["results"]
    ]  # fmt: skip
    if not rows:
        return None
    header = [
        "queue", "items", "ack p50 ms", "ack p95 ms", "acked/s", "indexed/s (end to end)",
        "drained/s (workers alone)", "inline batched/s", "end to end ÷ inline",
        "drained ÷ inline",
    ]  # fmt: skip
    return _table(header, rows)


def interleave() -> str | None:
    report = _load("scale.json")
    if not report or not any("after_add" in r["search_ms"] for r in _rows(report)):
        return None
    rows = []
    for r in _rows(report):
        if "after_add" not in r["search_ms"]:
            continue
        ms = r["search_ms"]
        rows.append(
            [f"{r['items']:,}", ms["unfiltered"]["p50"], ms["unfiltered"]["p95"],
             ms["after_add"]["p50"], ms["after_add"]["p95"], f"{r['after_add_vs_read_only_p95']}×"]
        )  # fmt: skip
    header = [
        "memories", "read-only p50 ms", "read-only p95 ms", "add-then-search p50 ms",
        "add-then-search p95 ms", "p95 ratio",
    ]  # fmt: skip
    return _table(header, rows)


def facts() -> str | None:
    report = _load("facts.json")
    if not report:
        return None
    rows = [
        [r["memories"], r["system"], r["questions"], r["hit@1"], r["hit@3"], r["mrr@10"],
         r["search_ms_p95"]]
        for r in report["results"]
    ]  # fmt: skip
    header = ["memories", "system", "questions", "hit@1", "hit@3", "MRR@10", "search p95 ms"]
    return _table(header, rows)


STRATEGIES = ("naive", "rotated", "sequential")


def activation() -> str | None:
    report = _load("activation_cpu.json")
    if not report:
        return None
    rows = []
    for r in report["results"]:
        comp = r["composition"]
        rows.append(
            [r["prefix_tokens"], r["ttft_ms_prefill"], r["ttft_ms_injected"], f"{r['speedup']}×",
             r["ttft_ms_copied"], f"{r['speedup_copied']}×",
             r["greedy_identical"], r["block_build_ms"], f"{r['block_bytes'] / 2**20:.0f}",
             *(f"{comp[s]['max_logit_diff']} / {comp[s]['kl']}" for s in STRATEGIES)]
        )  # fmt: skip
    header = [
        "prefix tokens", "TTFT prefill ms", "TTFT injected ms", "speedup",
        "TTFT copied ms", "speedup (copied)", "greedy identical",
        "block build ms", "block MiB", "naive: max Δlogit / KL", "rotated", "sequential",
    ]  # fmt: skip
    note = (
        f"{report['model_params'] / 1e6:.1f}M-parameter Llama-style model, {report['device']}, "
        f"{report['torch_threads']} threads, {report['query_tokens']}-token question."
    )
    return note + "\n\n" + _table(header, rows)


def parametric() -> str | None:
    report = _load("parametric_cpu.json")
    if not report:
        return None
    recall, training = report["recall_held_out"], report["training"]
    header = ["facts", "held-out questions", "recall: base", "recall: plaintext in prompt",
              "recall: adapter", "adapter, a trained phrasing", "prompt tokens saved per turn",
              "training s per memory", "loss first → last"]  # fmt: skip
    row = [report["facts"], report["held_out_questions"], recall["base"], recall["plaintext"],
           recall["adapter"], report["recall_trained_phrasing_adapter"],
           report["prompt_tokens_saved_per_turn"], training["seconds_per_memory"],
           f"{training['loss_first']} → {training['loss_last']}"]  # fmt: skip
    note = (
        f"{report['model_params']:,}-parameter model, {report['device']}; adapter rank "
        f"{training['rank']}, {training['epochs']} epochs on {training['examples']} examples, "
        f"{training['adapter_params']:,} adapter parameters."
    )
    return note + "\n\n" + _table(header, [row])


def stores() -> str | None:
    """LoCoMo raw recall on the embedded engine and on PostgreSQL, measured one after the other,
    and ``bench scale --store`` when its report is there."""
    rows = []
    for engine in ("sqlite", "postgresql"):
        r = _load(f"locomo_store_{engine}.json")
        if r is None:
            return None
        rows.append(
            [engine, *_recall(r["recall"]), r["search_ms"]["p50"], r["search_ms"]["p95"],
             r["ingest_items_per_s"]]
        )  # fmt: skip
    ks = list(_load("locomo_store_sqlite.json")["recall"])
    header = ["store", *(f"R@{k}" for k in ks), "p50 ms", "p95 ms", "ingest items/s"]
    out = _table(header, rows)
    report = _load("scale_store.json")
    if report is not None:
        out += "\n\n" + _table(
            ["store", "items", "ingest items/s", "index build s", "p50 ms", "p95 ms",
             "p95 ms, user", "p95 ms, user+tag", "p95 ms, after add"],
            [
                [r["store"], f"{r['items']:,}", r["ingest_items_per_s"], r["index_build_s"],
                 r["search_ms"]["unfiltered"]["p50"], r["search_ms"]["unfiltered"]["p95"],
                 r["search_ms"]["user"]["p95"], r["search_ms"]["user+tag"]["p95"],
                 r["search_ms"].get("after_add", {}).get("p95", "-")]
                for r in _rows(report)
            ],
        )  # fmt: skip
    alone = _load("scale_store_1e6.json")
    if alone is not None:
        out += "\n\nPostgreSQL alone (`--store-only`, a separate run):\n\n" + _table(
            ["store", "items", "ingest items/s", "index build s", "p50 ms", "p95 ms",
             "p95 ms, user", "p95 ms, user+tag", "p95 ms, after add", "RSS MB"],
            [
                [r["store"], f"{r['items']:,}", r["ingest_items_per_s"], r["index_build_s"],
                 r["search_ms"]["unfiltered"]["p50"], r["search_ms"]["unfiltered"]["p95"],
                 r["search_ms"]["user"]["p95"], r["search_ms"]["user+tag"]["p95"],
                 r["search_ms"].get("after_add", {}).get("p95", "-"), r["rss_mb"]]
                for r in _rows(alone)
            ],
        )  # fmt: skip
    lexical = _load("lexical_postgres.json")
    if lexical is not None:
        out += "\n\n" + _table(
            ["lexical alone", "R@5", "R@10", "p50 ms/query", "p95 ms/query"],
            [
                [name, f"{r['recall']['5']:.3f}", f"{r['recall']['10']:.3f}",
                 r["query_ms"]["p50"], r["query_ms"]["p95"]]
                for name, r in lexical["systems"].items()
            ],
        )  # fmt: skip
    return out


def prompt() -> str | None:
    """Both dev files side by side: recall, then what the middleware's defaults inject."""
    files = [("LoCoMo", _load("prompt_locomo.json")), ("BEAM", _load("prompt_beam.json"))]
    files = [(name, r) for name, r in files if r]
    if not files:
        return None
    rows: list[list[Any]] = []
    for label, key in (
        ("R@1 / R@5 / R@10", None),
        ("evidence injected (recall)", "injected_recall"),
        ("memories injected", "mean_injected"),
        ("precision (injected citing evidence)", "precision"),
        ("questions with nothing injected", "nothing_injected"),
        ("another conversation's questions: injected", "other_conversation"),
        ("abstention questions: injected", "abstention"),
        ("relevance AUC", "relevance_auc"),
    ):
        row: list[Any] = [label]
        for _, r in files:
            p = r["prompt"]
            if key is None:
                row.append(" / ".join(f"{r['recall'][k]:.3f}" for k in ("1", "5", "10")))
            elif key in ("other_conversation", "abstention"):
                row.append(p[key].get("mean_injected", "–") if p[key] else "–")
            else:
                row.append(p[key])
        rows.append(row)
    first = files[0][1]["prompt"]
    head = f"k={first['k']}, min_score={first['min_score']}: "
    out = head + "\n\n" + _table(["", *(n for n, _ in files)], rows)
    curve = [
        [
            "min_score",
            *(f"{n}: recall / memories / precision / other / abstention" for n, _ in files),
        ]
    ]
    for i, point in enumerate(files[0][1]["prompt"]["curve"]):
        row = [point["min_score"]]
        for _, r in files:
            c = r["prompt"]["curve"][i]
            row.append(
                f"{c['injected_recall']} / {c['mean_injected']} / {c['precision']} / "
                f"{c['other_injected']} / {c['abstention_injected'] or '–'}"
            )
        curve.append(row)
    return out + "\n\n" + _table(curve[0], curve[1:])


def chat_signals() -> str | None:
    report = _load("chat_signals.json")
    if not report:
        return None
    abilities = sorted({a for v in report.values() for a in v["recall_10_by_ability"]})
    rows = [
        [
            name,
            *_recall(v["recall"]),
            *(f"{v['recall_10_by_ability'].get(a, 0):.2f}" for a in abilities),
        ]
        for name, v in report.items()
    ]
    names = [a.replace("_", " ") for a in abilities]
    return _table(["BEAM dev", "R@1", "R@5", "R@10", *(f"R@10 {n}" for n in names)], rows)


def render(text: str) -> str:
    for name, section in (
        ("locomo", locomo),
        ("compare_locomo", compare),
        ("ablation", ablation),
        ("loco", loco),
        ("graph", graph),
        ("graph_cost", graph_cost),
        ("facts", facts),
        ("scale", scale),
        ("stores", stores),
        ("interleave", interleave),
        ("queue", queue),
        ("activation", activation),
        ("parametric", parametric),
        ("prompt", prompt),
        ("chat_signals", chat_signals),
    ):
        if f"<!-- {name}:begin -->" not in text:
            continue
        body = section()
        if body is None:
            continue
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        start, stop = text.index(begin) + len(begin), text.index(end)
        text = text[:start] + "\n" + body + "\n" + text[stop:]
    return text


def main() -> None:
    for page in PAGES:
        page.write_text(render(page.read_text(encoding="utf-8")), encoding="utf-8")
        print(page)


if __name__ == "__main__":
    main()
