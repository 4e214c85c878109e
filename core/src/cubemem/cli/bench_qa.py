"""``cubemem bench qa``: answer-level evaluation (LoCoMo, LongMemEval, HaluMem) with an LLM
answerer and judge on any OpenAI-compatible endpoint or a local transformers model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cubemem.cli.output import console, quiet_model_loading, run


def bench_qa(
    dataset: Annotated[str, typer.Option(help="locomo, longmemeval or halumem.")],
    data: Annotated[Path, typer.Option(help="The dataset file, in its published format.")],
    llm_model: Annotated[
        str,
        typer.Option(
            help="Answering model: a name on the endpoint, or transformers:PATH for a local one."
        ),
    ],
    llm_base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL, else OpenAI)."),
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option(help="Judging model (default: the answering one).")
    ] = None,
    judge_base_url: Annotated[
        str | None, typer.Option(help="The judge's endpoint (default: --llm-base-url).")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="raw turns, extracted facts, or both (facts need the LLM).")
    ] = "raw",
    k: Annotated[int, typer.Option(help="Memories retrieved per question.")] = 10,
    limit: Annotated[int | None, typer.Option(help="Stop after this many questions.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Longest answer or verdict, tokens.")] = 256,
    price_in: Annotated[float, typer.Option(help="USD per 10^6 prompt tokens, for the cost.")] = 0,
    price_out: Annotated[float, typer.Option(help="USD per 10^6 completion tokens.")] = 0,
    workdir: Annotated[
        Path, typer.Option(help="Cubes and the checkpoint; a second run resumes from them.")
    ] = Path("cubemem-qa"),
    restart: Annotated[bool, typer.Option(help="Forget a previous run in --workdir.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Answer each question from retrieved memories and judge the answer (published judge
    prompts); J or accuracy by category, context tokens, latency per stage, cost. Resumable:
    finished questions are kept in --workdir as they end."""
    from cubemem.bench import qa, qa_systems
    from cubemem.embed import SentenceTransformerEmbedder

    quiet_model_loading()
    checkpoint = workdir / "checkpoint.jsonl"
    if restart:
        qa.fresh(workdir / "cubes", checkpoint)
    answer = run(lambda: qa_systems.chat(llm_model, llm_base_url, max_tokens=max_tokens))
    judge = (
        answer
        if judge_model is None and judge_base_url is None
        else run(
            lambda: qa_systems.chat(
                judge_model or llm_model, judge_base_url or llm_base_url, max_tokens=max_tokens
            )
        )
    )
    clients = qa.Clients(answer, judge, price_in=price_in, price_out=price_out)
    system = run(
        lambda: qa_systems.CubememSystem(SentenceTransformerEmbedder(), mode=mode, llm=answer)
    )
    with console.status("answering and judging ...") as status:
        report = run(
            lambda: qa.run(
                dataset,
                data,
                system,
                clients,
                k=k,
                workdir=workdir / "cubes",
                checkpoint=checkpoint,
                limit=limit,
                progress=lambda qid: status.update(f"answered {qid}"),
            )
        )
    table = Table(title=f"{dataset}: {report['system']}, answer {report['answer_model']}")
    for column in ("category", "questions", "score"):
        table.add_column(column, justify="right")
    for name, row in report["by_category"].items():
        table.add_row(name, str(row["questions"]), f"{row['score']:.3f}")
    table.add_row("all", str(report["questions"]), str(report["score"]))
    console.print(table)
    latency = report["latency_ms"]
    console.print(
        f"context {report['context_tokens_per_question']} tokens/question; p50 ms: add/session "
        f"{latency['add_per_session']['p50']}, search {latency['search']['p50']}, answer "
        f"{latency['answer']['p50']}, judge {latency['judge']['p50']}; tokens "
        f"{report['tokens']}; cost {report['cost_usd']}",
        highlight=False,
    )
    typer.echo(json.dumps(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
