"""The answer-level harness's report: score overall and by category, tokens in context and
spent, latency per stage, cost, and HaluMem's extraction, update and answer ratios."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from cubemem.bench import percentile


def _ratio(values: list[Any], want: Any) -> float | None:
    valid = [v for v in values if v is not None]
    return round(sum(v == want for v in valid) / len(valid), 4) if valid else None


def report(
    dataset: str,
    path: Path,
    system: str,
    models: tuple[str, str],
    prices: tuple[float, float],
    records: list[dict[str, Any]],
    k: int,
) -> dict[str, Any]:
    """``models``: the answering and judging models' names; ``prices``: USD per 10^6 prompt
    and completion tokens (0, 0: no cost)."""
    questions = [r for r in records if r["kind"] == "question"]
    sessions = [r for r in records if r["kind"] == "session"]
    by_category: dict[str, list[bool]] = {}
    for r in questions:
        by_category.setdefault(r["category"], []).append(r["correct"])
    tokens_in = sum(r["answer_tokens"]["prompt"] + r["judge_tokens"]["prompt"] for r in questions)
    tokens_out = sum(
        r["answer_tokens"]["completion"] + r["judge_tokens"]["completion"] for r in questions
    )

    def stage(name: str) -> dict[str, float]:
        values = [r["ms"][name] for r in questions]
        return {"p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2)}

    adds = [r["add_ms"] for r in sessions if "add_ms" in r]
    out: dict[str, Any] = {
        "benchmark": "qa",
        "dataset": dataset,
        "data": str(path),
        "system": system,
        "answer_model": models[0],
        "judge_model": models[1],
        "k": k,
        "questions": len(questions),
        "score": round(statistics.mean(r["correct"] for r in questions), 4) if questions else None,
        "by_category": {
            c: {"score": round(statistics.mean(v), 4), "questions": len(v)}
            for c, v in sorted(by_category.items())
        },
        "unparsed_verdicts": sum(not r["parsed"] for r in questions),
        "context_tokens_per_question": round(
            statistics.mean(r["context_tokens"] for r in questions), 1
        )
        if questions
        else None,
        "latency_ms": {
            "add_per_session": {
                "p50": round(percentile(adds, 50), 2),
                "p95": round(percentile(adds, 95), 2),
            },
            **{name: stage(name) for name in ("search", "answer", "judge")},
        },
        "tokens": {"prompt": tokens_in, "completion": tokens_out},
        "cost_usd": round((tokens_in * prices[0] + tokens_out * prices[1]) / 1e6, 4)
        if any(prices) and (tokens_in or tokens_out)
        else None,
    }
    if dataset == "halumem":
        out["halumem"] = _halumem_scores(questions, sessions)
    return out


def _halumem_scores(
    questions: list[dict[str, Any]], sessions: list[dict[str, Any]]
) -> dict[str, Any]:
    def flat(key: str) -> list[Any]:
        return [v for r in sessions for v in r.get(key, [])]

    results = [r.get("result") for r in questions]
    return {
        "extraction": {
            "recall": _ratio(flat("integrity"), 2),
            "accuracy": _ratio(flat("accuracy"), 2),
            "interference_kept_out": _ratio(flat("interference"), 0),
        },
        "update": {
            name.lower(): _ratio(flat("updates"), name)
            for name in ("Correct", "Hallucination", "Omission", "Other")
        },
        "qa": {
            name.lower(): _ratio(results, name) for name in ("Correct", "Hallucination", "Omission")
        },
    }
