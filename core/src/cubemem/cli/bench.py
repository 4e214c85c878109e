"""``cubemem bench``: recall, scale, facts, activation and parametric benchmarks (JSON and a
table each; docs/benchmarks.md shows their numbers with the commands)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from cubemem.cli.bench_qa import bench_qa
from cubemem.cli.output import console, int_list, progress, quiet_model_loading
from cubemem.cli.output import fail as _fail
from cubemem.cli.output import run as _run
from cubemem.errors import InvalidInputError

bench_app = typer.Typer(help="Benchmarks: recall and latency.", no_args_is_help=True)
bench_app.command("qa")(bench_qa)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (and nothing else).")]


@bench_app.command("locomo")
def bench_locomo(
    data: Annotated[Path, typer.Option(help="A LoCoMo JSON file.")],
    conversations: Annotated[
        str | None, typer.Option(help="Comma-separated indexes into the file (default: all).")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="raw (every turn), observations (LoCoMo's own facts), both (turns and "
            "observations), or llm (turns plus facts extracted by --llm-model)."
        ),
    ] = "raw",
    k: Annotated[str, typer.Option("--k", help="Comma-separated cut-offs.")] = "1,5,10,20",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    llm_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint for --mode llm.")
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="Chat model for --mode llm.")] = None,
) -> None:
    """Evidence recall@k, search latency and ingest speed on LoCoMo."""
    from cubemem.bench import locomo

    chat = None
    if mode == "llm":
        if not llm_model:
            _fail("--mode llm needs --llm-model (and --llm-base-url for a local server)")
        from cubemem.llm import OpenAIChat

        chat = _run(lambda: OpenAIChat(llm_model, base_url=llm_base_url))
    chosen = _run(lambda: int_list(conversations, "--conversations")) if conversations else None
    ks = _run(lambda: int_list(k, "--k"))
    samples = _run(lambda: locomo.load(data))
    indexes = chosen if chosen is not None else list(range(len(samples)))
    total = sum(len(locomo.questions(samples[i])) for i in indexes if 0 <= i < len(samples))
    with progress() as bar:
        task = bar.add_task(f"locomo {mode}", total=total)
        report = _run(
            lambda: locomo.run(
                data,
                conversations=chosen,
                mode=cast(locomo.Mode, mode),
                ks=ks,
                progress=lambda what, _: bar.advance(task) if what == "question" else None,
                llm=chat,
            )
        )
    table = Table(title=f"LoCoMo evidence recall ({mode}, {report['questions']} questions)")
    for column in ["", *(f"R@{x}" for x in report["recall"])]:
        table.add_column(column, justify="right")
    table.add_row("all", *(f"{v:.3f}" for v in report["recall"].values()))
    for category, row in report["recall_by_category"].items():
        name = locomo.CATEGORY_NAMES[int(category)]
        table.add_row(f"{category} {name}", *(f"{v:.3f}" for v in row.values()))
    off = report["graph_off"]
    table.add_row("all, graph off", *(f"{v:.3f}" for v in off["recall"].values()))
    for category, row in off["recall_by_category"].items():
        name = locomo.CATEGORY_NAMES[int(category)]
        table.add_row(f"{category} {name}, graph off", *(f"{v:.3f}" for v in row.values()))
    console.print(table)
    p = report["prompt"]
    nothing = [
        f"{name} {p[key]['mean_injected']}"
        for key, name in (("abstention", "abstention"), ("other_conversation", "other cube"))
        if p[key]
    ]
    console.print(
        f"prompt (k={p['k']}, min_score={p['min_score']}): injected recall "
        f"{p['injected_recall']}, {p['mean_injected']} injected, precision {p['precision']}, "
        f"nothing injected {p['nothing_injected']}; nothing to find, mean injected: "
        f"{', '.join(nothing) or '-'}; relevance AUC {p['relevance_auc']}"
    )
    console.print(
        f"search p50 {report['search_ms']['p50']} ms, p95 {report['search_ms']['p95']} ms; "
        f"ingest {report['ingest_items_per_s']} items/s"
    )
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


@bench_app.command("scale")
def bench_scale(
    items: Annotated[str, typer.Option(help="Comma-separated cube sizes.")] = "10000,100000",
    queries: Annotated[int, typer.Option(help="Searches per size and filter.")] = 500,
    precomputed: Annotated[
        bool, typer.Option(help="Random unit vectors instead of the model (index cost only).")
    ] = False,
    interleave: Annotated[
        int,
        typer.Option(help="Rounds of 'add one memory, then search' after the read-only searches."),
    ] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            help="Measure background ingestion through this queue instead: sqlite or "
            "redis://host:port/db (acknowledged add latency, acked and indexed items/s)."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Also measure this store (postgresql://...) beside the embedded engine, in "
            "the same run."
        ),
    ] = None,
    store_only: Annotated[
        bool,
        typer.Option(
            help="Measure --store alone (when the embedded engine's numbers at these sizes "
            "come from another run: compare them as a rough guide only)."
        ),
    ] = False,
    keep: Annotated[
        Path | None,
        typer.Option(
            help="Keep the cubes in this folder and reuse them on the next run (their ingest "
            "speed is the one measured when they were built; a PostgreSQL cube needs the same "
            "database)."
        ),
    ] = None,
) -> None:
    """Ingest speed, search latency, RSS and disk per item as a cube grows."""
    from cubemem.bench import scale
    from cubemem.store import engine_of

    sizes = _run(lambda: int_list(items, "--items"))
    if queue is not None:
        _bench_queue(sizes, queue, precomputed, json_out)
        return
    stores = ["sqlite"]
    if store is not None and _run(lambda: engine_of(store)) != "sqlite":
        stores.append(store)
    if store_only:
        if len(stores) == 1:
            _run(_store_only_needs_a_store)
        stores = stores[1:]
    with progress() as bar:
        ingest = bar.add_task("ingest", total=sum(sizes) * len(stores))
        search = bar.add_task("search", total=(3 * queries + interleave) * len(sizes) * len(stores))
        report = _run(
            lambda: scale.run(
                sizes,
                queries=queries,
                precomputed=precomputed,
                interleave=interleave,
                progress=lambda what, n: bar.advance(ingest if what == "ingest" else search, n),
                stores=stores,
                keep=keep,
            )
        )
    table = Table(title=f"scale ({report['embedder']}, {queries} queries per filter)")
    for column in (
        "store", "items", "ingest/s", "index build s", "open s", "p50 ms", "p95 ms", "p95 user",
        "p95 user+tag", "p95 after add", "RSS MB", "disk B/item",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for r in report["results"]:
        ms = r["search_ms"]
        table.add_row(
            r["store"],
            f"{r['items']:,}",
            f"{r['ingest_items_per_s']:,}",
            str(r["index_build_s"]),
            str(r["open_s"]),
            str(ms["unfiltered"]["p50"]),
            str(ms["unfiltered"]["p95"]),
            str(ms["user"]["p95"]),
            str(ms["user+tag"]["p95"]),
            str(ms["after_add"]["p95"]) if "after_add" in ms else "-",
            str(r["rss_mb"]),
            "-" if r["disk_bytes_per_item"] is None else f"{r['disk_bytes_per_item']:,}",
        )
    _report(table, report, json_out)


@bench_app.command("facts")
def bench_facts(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated cube sizes; 'all' for every fact.")
    ] = "10,30,100,all",
    data: Annotated[
        Path | None, typer.Option(help="A fact-set JSON file (default: the bundled one).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """One-line facts, one right fact per question: the default fusion beside dense and BM25."""
    from cubemem.bench import facts

    parts = [p.strip() for p in sizes.split(",") if p.strip()]
    chosen: list[int | None] = [
        None if p == "all" else _run(lambda p=p: int_list(p, "--sizes"))[0] for p in parts
    ]
    quiet_model_loading()
    report = _run(lambda: facts.run(chosen, path=data))
    table = Table(title=f"fact set ({report['facts']} facts)")
    for column in ("memories", "system", "questions", "hit@1", "hit@3", "MRR@10", "p95 ms"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(
            str(r["memories"]), r["system"], str(r["questions"]), str(r["hit@1"]),
            str(r["hit@3"]), str(r["mrr@10"]), str(r["search_ms_p95"]),
        )  # fmt: skip
    _report(table, report, json_out)


@bench_app.command("redaction")
def bench_redaction(
    data: Annotated[
        Path | None, typer.Option(help="A PII set JSON file (default: the bundled one).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Precision and recall of the PII detectors, by kind, on a written set."""
    from cubemem.bench import redaction

    path = data or redaction.DATA
    report = _run(lambda: redaction.report(json.loads(path.read_text(encoding="utf-8"))))
    table = Table(title=f"PII redaction ({report['all']['sentences']} sentences)")
    for column in ("items", "kind", "labelled", "found", "right", "precision", "recall"):
        table.add_column(column, justify="right")
    for part, result in report.items():
        rows = [("all", result["overall"]), *result["by_kind"].items()]
        for kind, r in rows:
            if r["labelled"] or r["found"]:
                table.add_row(
                    part, kind, str(r["labelled"]), str(r["found"]), str(r["right"]),
                    str(r["precision"]), str(r["recall"]),
                )  # fmt: skip
    _report(table, report, json_out)


@bench_app.command("activation")
def bench_activation(
    prefix_tokens: Annotated[
        str, typer.Option(help="Comma-separated memory prefix lengths in tokens.")
    ] = "512,2048",
    repeats: Annotated[int, typer.Option(help="Timed runs per measurement (median).")] = 3,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda ...")] = "cpu",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Time to first token with memory re-prefilled vs injected as a KV cache (~50M model)."""
    try:
        from cubemem_activation import bench
    except ImportError:
        _run(_missing_activation)
        return
    sizes = _run(lambda: int_list(prefix_tokens, "--prefix-tokens"))
    with progress() as bar:
        task = bar.add_task("prefix lengths", total=len(sizes))
        report = _run(
            lambda: bench.run(
                sizes, repeats=repeats, device=device, progress=lambda n: bar.advance(task, n)
            )
        )
    table = Table(title=f"activation memory ({report['model_params'] / 1e6:.0f}M params, "
                  f"{report['device']})")  # fmt: skip
    for column in (
        "prefix tokens", "TTFT prefill ms", "TTFT injected ms", "speedup", "greedy identical",
        "block build ms", "block MB", "KL naive", "KL rotated", "KL sequential",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for r in report["results"]:
        kl = {s: r["composition"][s]["kl"] for s in r["composition"]}
        table.add_row(
            str(r["prefix_tokens"]), str(r["ttft_ms_prefill"]), str(r["ttft_ms_injected"]),
            f"{r['speedup']}x", str(r["greedy_identical"]), str(r["block_build_ms"]),
            f"{r['block_bytes'] / 2**20:.1f}", str(kl["naive"]), str(kl["rotated"]),
            str(kl["sequential"]),
        )  # fmt: skip
    _report(table, report, json_out)


@bench_app.command("parametric")
def bench_parametric(
    facts: Annotated[int, typer.Option(help="Facts to memorise (1-20).")] = 12,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    learning_rate: Annotated[float, typer.Option(help="LoRA learning rate.")] = 3e-3,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the facts, the model and training.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Recall of facts trained into a LoRA adapter, on unseen phrasings, vs the base model and
    vs the facts as prompt text (a tiny model built on the spot, CPU)."""
    try:
        from cubemem_activation import bench_parametric as bench
    except ImportError:
        _run(_missing_activation)
        return
    with progress() as bar:
        task = bar.add_task("questions", total=facts * 7)
        report = _run(
            lambda: bench.run(
                facts, epochs=epochs, learning_rate=learning_rate, rank=rank, seed=seed,
                progress=lambda n: bar.advance(task, n),
            )
        )  # fmt: skip
    table = Table(
        title=f"parametric memory ({report['model_params']:,} params, {report['device']})"
    )
    for column in ("facts", "recall base", "recall plaintext", "recall adapter",
                   "adapter, trained phrasing", "prompt tokens saved/turn", "train s/memory",
                   "loss first -> last"):  # fmt: skip
        table.add_column(column, justify="right")
    recall, training = report["recall_held_out"], report["training"]
    table.add_row(
        str(report["facts"]), str(recall["base"]), str(recall["plaintext"]),
        str(recall["adapter"]), str(report["recall_trained_phrasing_adapter"]),
        str(report["prompt_tokens_saved_per_turn"]), str(training["seconds_per_memory"]),
        f"{training['loss_first']} -> {training['loss_last']}",
    )  # fmt: skip
    _report(table, report, json_out)


def _store_only_needs_a_store() -> None:
    raise InvalidInputError(
        "--store-only measures the --store engine: pass --store postgresql://..."
    )


def _missing_activation() -> None:
    raise InvalidInputError(
        "activation memory needs the cubemem-activation package: pip install cubemem-activation"
    )


def _bench_queue(sizes: list[int], queue: str, precomputed: bool, json_out: Path | None) -> None:
    from cubemem.bench import scale, scale_queue
    from cubemem.embed import SentenceTransformerEmbedder

    embedder = scale.RandomEmbedder() if precomputed else SentenceTransformerEmbedder()
    results = []
    with progress() as bar, tempfile.TemporaryDirectory(prefix="cubemem-queue-") as tmp:
        task = bar.add_task("inline, background, drain", total=5 * sum(sizes))
        for size in sizes:
            results.append(
                _run(
                    lambda size=size: scale_queue.run_queue(
                        size,
                        queue_url=queue,
                        embedder=embedder,
                        workdir=Path(tmp),
                        progress=lambda _, n: bar.advance(task, n),
                    )
                )
            )
    report = {
        "benchmark": "scale-queue",
        "embedder": "precomputed random unit vectors" if precomputed else "all-MiniLM-L6-v2",
        "results": results,
    }
    table = Table(title=f"background ingestion through {queue}")
    for column in (
        "items", "ack p50 ms", "ack p95 ms", "acked/s", "indexed/s", "drained/s",
        "inline batched/s", "indexed ÷ inline", "drained ÷ inline",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r['items']:,}",
            str(r["ack_ms"]["p50"]),
            str(r["ack_ms"]["p95"]),
            f"{r['acked_per_s']:,}",
            f"{r['indexed_per_s']:,}",
            f"{r['drained_per_s']:,}",
            f"{r['inline_batched_per_s']:,}",
            str(r["indexed_vs_inline"]),
            str(r["drained_vs_inline"]),
        )
    _report(table, report, json_out)


def _report(table: Table, report: dict[str, Any], json_out: Path | None) -> None:
    """The table for people, the JSON on stdout for scripts, and in ``json_out`` if given."""
    console.print(table)
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
