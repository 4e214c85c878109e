"""LoCoMo evidence recall: ingest each conversation into its own cube, ask its questions.

Evidence recall@k = |evidence turn ids ∩ source turn ids of the top k results| / |evidence|,
averaged over the questions of categories 1–4 that carry evidence (Maharana et al., 2024).
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cubemem.bench import percentile, prompt
from cubemem.cube import MemCube
from cubemem.embed import Embedder
from cubemem.errors import InvalidInputError
from cubemem.extract import LLMExtractor
from cubemem.llm import ChatClient
from cubemem.model import MemoryInput, Scope
from cubemem.retrieve import RetrievalConfig

Mode = Literal["raw", "observations", "both", "llm"]
MODES = ("raw", "observations", "both", "llm")
"""raw: every turn; observations: LoCoMo's own observations, each citing its evidence turns
(what a perfect extractor would store); both: turns and observations in one cube, searched
together; llm: turns plus the facts an ``LLMExtractor`` extracts from them."""
CATEGORIES = (1, 2, 3, 4)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
_SESSION = re.compile(r"^session_(\d+)$")
_ID = re.compile(r"D\d+:\d+")


@dataclass(frozen=True)
class Question:
    text: str
    evidence: frozenset[str]
    category: int
    ability: str | None = None
    """BEAM's ability (information_extraction, abstention, ...); None on LoCoMo."""


def load(path: Path) -> list[dict[str, Any]]:
    """Read a LoCoMo file: a JSON list of samples with ``conversation`` and ``qa``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read LoCoMo file {path}: {exc}") from exc
    if not isinstance(data, list) or not all(
        isinstance(s, dict) and "conversation" in s and "qa" in s for s in data
    ):
        raise InvalidInputError(
            f"{path} is not a LoCoMo file: expected a JSON list of samples with "
            "'conversation' and 'qa'"
        )
    return data


def session_time(text: str) -> datetime:
    """Parse LoCoMo's '1:56 pm on 8 May, 2023'."""
    try:
        return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")
    except ValueError:
        raise InvalidInputError(f"unrecognised LoCoMo session time {text!r}") from None


def sessions(sample: dict[str, Any]) -> list[tuple[str, datetime, list[dict[str, Any]]]]:
    """(session key, session time, messages) in session order."""
    conversation = sample["conversation"]
    found = []
    for key, turns in conversation.items():
        match = _SESSION.match(key)
        if match and turns:
            found.append((int(match.group(1)), key, turns))
    out = []
    for _, key, turns in sorted(found):
        when = session_time(conversation[f"{key}_date_time"])
        messages = []
        for turn in turns:
            text = turn["text"]
            if turn.get("blip_caption"):
                text = f"{text} [shares a photo: {turn['blip_caption']}]"
            messages.append({"speaker": turn["speaker"], "text": text, "id": turn["dia_id"]})
        out.append((key, when, messages))
    return out


def asked_at(sample: dict[str, Any]) -> datetime:
    """When a conversation's questions are asked: the day after its last session (the clock
    the benchmark gives the cube, so "last week" in a question means what it meant then)."""
    return max(when for _, when, _ in sessions(sample)).replace(tzinfo=UTC) + timedelta(days=1)


def _clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def observations(sample: dict[str, Any]) -> list[MemoryInput]:
    """The sample's observation facts as memories, each citing its evidence turn ids."""
    times = {key: when for key, when, _ in sessions(sample)}
    items = []
    for obs_key, by_speaker in sample.get("observation", {}).items():
        key = obs_key.removesuffix("_observation")
        for speaker, facts in by_speaker.items():
            for fact, evidence in facts:
                ids = _ID.findall(evidence if isinstance(evidence, str) else " ".join(evidence))
                items.append(
                    MemoryInput(
                        content=fact,
                        scope=Scope(session=key),
                        source_ids=ids,
                        speaker=speaker,
                        occurred_at=times.get(key),
                    )
                )
    return items


def questions(sample: dict[str, Any]) -> list[Question]:
    """Questions of categories 1–4 that carry evidence turn ids."""
    out = []
    for qa in sample["qa"]:
        evidence = frozenset(_ID.findall(" ".join(map(str, qa.get("evidence", [])))))
        if qa.get("category") in CATEGORIES and evidence:
            out.append(Question(qa["question"], evidence, qa["category"], qa.get("ability")))
    return out


def abstentions(sample: dict[str, Any]) -> list[Question]:
    """Questions about things never said (BEAM's ``abstention``): nothing to find."""
    return [
        Question(qa["question"], frozenset(), 5, "abstention")
        for qa in sample["qa"]
        if qa.get("ability") == "abstention"
    ]


def ingest(cube: MemCube, sample: dict[str, Any], mode: Mode) -> int:
    count = 0
    if mode in ("raw", "both", "llm"):  # with an extractor set (llm), facts follow each session
        for key, when, messages in sessions(sample):
            count += len(cube.add_messages(messages, session=key, timestamp=when))
    if mode in ("observations", "both"):
        count += len(cube.add(observations(sample)))
    return count


def recall_at(hits_ids: Sequence[Sequence[str]], evidence: frozenset[str], k: int) -> float:
    found = {i for ids in hits_ids[:k] for i in ids}
    return len(evidence & found) / len(evidence)


def run(
    path: Path,
    *,
    conversations: Sequence[int] | None = None,
    mode: Mode = "raw",
    ks: Sequence[int] = (1, 5, 10, 20),
    embedder: Embedder | None = None,
    progress: Callable[[str, int], None] | None = None,
    llm: ChatClient | None = None,
    retrieval: RetrievalConfig | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON report (schema in docs/benchmarks.md).
    ``retrieval``: the knobs every cube searches with (default: the shipped ones).

    ``mode="llm"`` needs ``llm``, the chat model the extractor uses; its report adds the
    extraction cost (calls, tokens, seconds per turn) and the facts that cite no evidence.
    """
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
    if (mode == "llm") != (llm is not None):
        raise InvalidInputError("mode 'llm' takes a chat model (llm=...), and only it does")
    extractor = LLMExtractor(llm) if llm is not None else None
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 for k in ks):
        raise InvalidInputError(f"k values must be positive ints, got {list(ks)!r}")
    data = load(path)
    chosen = list(range(len(data))) if conversations is None else list(conversations)
    bad = [i for i in chosen if not 0 <= i < len(data)]
    if bad:
        raise InvalidInputError(f"conversation indexes {bad} out of range 0..{len(data) - 1}")
    ks = sorted(set(ks))
    per_question: list[tuple[int, dict[int, float]]] = []
    graph_off: list[tuple[int, dict[int, float]]] = []
    asked: list[prompt.Asked] = []
    empty: dict[str, list[prompt.Asked]] = {"abstention": [], "elsewhere": []}
    latencies: list[float] = []
    tokens: list[list[int]] = []
    ingested, ingest_seconds = 0, 0.0
    with tempfile.TemporaryDirectory(prefix="cubemem-locomo-") as tmp:
        for index in chosen:
            sample = data[index]
            cube = MemCube.create(Path(tmp) / f"conv-{index}", embedder=embedder)
            embedder = cube.embedder  # load the model once, reuse it for every cube
            cube.maintenance.context.clock = _clock(asked_at(sample))
            cube.maintenance.extractor = extractor
            if retrieval is not None:
                cube.maintenance.retrieval = retrieval
            start = time.perf_counter()
            ingested += ingest(cube, sample, mode)
            ingest_seconds += time.perf_counter() - start
            if progress:
                progress("ingested", index)
            depth = max(ks[-1], prompt.AUC_DEPTH)
            for q in questions(sample):
                start = time.perf_counter()
                hits = cube.search(q.text, k=depth)
                latencies.append((time.perf_counter() - start) * 1000)
                ids = [h.provenance.source_ids for h in hits]
                tokens.append([len(h.content) // 4 + 1 for h in hits])
                per_question.append((q.category, {k: recall_at(ids, q.evidence, k) for k in ks}))
                graph_off.append((q.category, _without_graph(cube, q, ks)))
                asked.append(_asked(q, hits))
                if progress:
                    progress("question", index)
            empty["abstention"] += [
                _asked(q, cube.search(q.text, k=depth)) for q in abstentions(sample)
            ]
            if len(data) > 1:  # another conversation's questions: people this cube never met
                other = questions(data[(index + 1) % len(data)])[:OTHER_QUESTIONS]
                empty["elsewhere"] += [_asked(q, cube.search(q.text, k=depth)) for q in other]
            cube.close()
    report = _report(mode, chosen, ks, per_question, latencies, ingested, ingest_seconds)
    off = _report(mode, chosen, ks, graph_off, [], 0, 0.0)
    report["graph_off"] = {key: off[key] for key in ("recall", "recall_by_category")}
    abilities = sorted({q.ability for q in asked if q.ability})
    report["recall_by_ability"] = {
        b: {
            str(k): round(
                statistics.fmean(
                    recall_at(_sources(a), a.evidence, k) for a in asked if a.ability == b
                ),
                4,
            )
            for k in ks
        }
        for b in abilities
    }
    report["prompt"] = prompt.report(asked, empty["abstention"], empty["elsewhere"])
    report["tokens_per_question"] = {
        str(k): round(statistics.fmean(sum(t[:k]) for t in tokens), 1) if tokens else 0.0
        for k in ks
    }
    if extractor is not None:
        usage = dict(extractor.usage)
        turns = max(1, usage["turns"])
        report["extraction"] = {
            **usage,
            "model": llm.name if llm is not None else None,
            "seconds_per_turn": round(ingest_seconds / turns, 3),
            "prompt_tokens_per_turn": round(usage["prompt_tokens"] / turns, 1),
            "uncited_share": round(usage["uncited"] / max(1, usage["facts"]), 4),
        }
    return report


OTHER_QUESTIONS = 30
"""Questions of the next conversation asked of each cube (nothing to find there)."""


def _asked(q: Question, hits: Sequence[Any]) -> prompt.Asked:
    results = [(list(h.provenance.source_ids), h.relevance) for h in hits]
    return prompt.Asked(q.evidence, results, q.category, q.ability)


def _sources(a: prompt.Asked) -> list[list[str]]:
    return [sources for sources, _ in a.results]


def _without_graph(cube: MemCube, q: Question, ks: Sequence[int]) -> dict[int, float]:
    """The question's recall with the entity signal off (the same cube, the same index)."""
    config = cube.maintenance.retrieval
    cube.maintenance.retrieval = replace(config, entity_weight=0.0)
    try:
        ids = [h.provenance.source_ids for h in cube.search(q.text, k=ks[-1])]
    finally:
        cube.maintenance.retrieval = config
    return {k: recall_at(ids, q.evidence, k) for k in ks}


def _report(
    mode: str,
    chosen: list[int],
    ks: list[int],
    per_question: list[tuple[int, dict[int, float]]],
    latencies: list[float],
    ingested: int,
    ingest_seconds: float,
) -> dict[str, Any]:
    def mean_recall(rows: list[dict[int, float]]) -> dict[str, float]:
        return {str(k): round(statistics.fmean(r[k] for r in rows), 4) if rows else 0.0 for k in ks}

    by_category = {
        str(c): mean_recall([r for cat, r in per_question if cat == c]) for c in CATEGORIES
    }
    return {
        "dataset": "locomo",
        "mode": mode,
        "conversations": chosen,
        "questions": len(per_question),
        "recall": mean_recall([r for _, r in per_question]),
        "recall_by_category": by_category,
        "search_ms": {
            "p50": round(percentile(latencies, 50), 2) if latencies else 0.0,
            "p95": round(percentile(latencies, 95), 2) if latencies else 0.0,
        },
        "ingest_items_per_s": round(ingested / ingest_seconds, 1) if ingest_seconds else 0.0,
    }
