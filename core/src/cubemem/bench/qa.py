"""Answer-level evaluation: ingest a benchmark's conversations, retrieve, answer with an LLM,
judge with an LLM, and report what users ask — how often the answer is right, at what token
cost and latency.

One pass, in file order (deterministic): for each conversation, each session is added
(timed), then the questions asked after it are searched (top ``k``), answered and judged,
each stage timed and its tokens counted. HaluMem also judges what each session left in memory
(extraction recall and accuracy) and what a search returns for each updated memory.

Every finished question (and HaluMem session) is appended to a JSON-lines checkpoint as it
ends; a run started again with the same checkpoint skips what is there, and reuses the
conversations' cubes a finished ingestion left in ``workdir``. A crash, a rate limit that
outlasts the model client's retries, or Ctrl-C loses at most the question in flight.

Any memory system with the ``MemorySystem`` shape runs through the same answerer and judge:
cubemem here; mem0 and LangGraph's store in ``benchmarks/qa_peers.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cubemem.bench import qa_prompts
from cubemem.bench.qa_data import Conversation, Question, Session, load
from cubemem.bench.qa_report import report
from cubemem.errors import InvalidInputError
from cubemem.llm import ChatClient, Completion

MODES = ("raw", "extracted", "both")


class MemorySystem(Protocol):
    """What the harness needs of a memory: a store per conversation, sessions in, text out."""

    name: str

    def open(self, conversation: Conversation, workdir: Path) -> bool:
        """Get ready for ``conversation``; True when a finished ingestion is there to reuse."""
        ...

    def add(self, session: Session) -> list[str]:
        """Store a session; returns what it stored of it, as text (HaluMem judges it)."""
        ...

    def ingested(self) -> None:
        """Every session is in (a resumed run may reuse it)."""
        ...

    def search(self, question: str, k: int, now: datetime | None) -> list[str]:
        """The ``k`` memories for ``question``, best first, as the answerer reads them."""
        ...

    def close(self) -> None: ...


@dataclass
class Clients:
    answer: ChatClient
    judge: ChatClient
    price_in: float = 0.0
    """USD per 10^6 prompt tokens (0: no cost reported)."""
    price_out: float = 0.0


def _label_locomo(text: str) -> bool | None:
    found = re.findall(r"\b(CORRECT|WRONG)\b", text.upper())
    return None if not found else found[-1] == "CORRECT"


def _json_field(text: str, key: str) -> Any:
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            return json.loads(match.group(0)).get(key)
        except (ValueError, AttributeError):
            pass
    found = re.search(rf'"{key}"\s*:\s*"?([A-Za-z0-9]+)', text)
    return found.group(1) if found else None


def judge_question(dataset: str, q: Question, answer: str, judge: ChatClient) -> dict[str, Any]:
    """The judge's verdict in the dataset's own terms, and its completion."""
    if dataset == "locomo":
        prompt = qa_prompts.LOCOMO_JUDGE.format(
            question=q.text, gold_answer=q.gold, generated_answer=answer
        )
        done = judge.complete([{"role": "user", "content": prompt}])
        correct = _label_locomo(done.text)
        return {"correct": bool(correct), "parsed": correct is not None, "judge": done}
    if dataset == "longmemeval":
        template = (
            qa_prompts.LONGMEMEVAL_ABSTENTION
            if q.abstention
            else qa_prompts.LONGMEMEVAL_JUDGE.get(q.category)
        )
        if template is None:
            raise InvalidInputError(f"unknown LongMemEval question type {q.category!r}")
        done = judge.complete(
            [{"role": "user", "content": template.format(q.text, q.gold, answer)}]
        )
        return {"correct": "yes" in done.text.lower(), "parsed": True, "judge": done}
    prompt = qa_prompts.HALUMEM_QA.format(
        question=q.text, gold=q.gold, evidence="\n".join(q.evidence) or "-", answer=answer
    )
    done = judge.complete([{"role": "user", "content": prompt}])
    result = _json_field(done.text, "result")
    result = result if result in ("Correct", "Hallucination", "Omission") else None
    return {
        "correct": result == "Correct",
        "parsed": result is not None,
        "result": result,
        "judge": done,
    }


def _tokens(done: Completion) -> dict[str, int]:
    return {"prompt": done.prompt_tokens, "completion": done.completion_tokens}


def ask(
    dataset: str, system: MemorySystem, q: Question, k: int, clients: Clients
) -> dict[str, Any]:
    """Search, answer and judge one question; its record."""
    start = time.perf_counter()
    context = system.search(q.text, k, q.asked_at)
    search_ms = (time.perf_counter() - start) * 1000
    today = f"{q.asked_at:%d %B %Y}" if q.asked_at else "unknown"
    messages = [
        {"role": "system", "content": qa_prompts.ANSWER_SYSTEM},
        {
            "role": "user",
            "content": qa_prompts.ANSWER_USER.format(
                context="\n".join(context) or "(none)", today=today, question=q.text
            ),
        },
    ]
    start = time.perf_counter()
    answered = clients.answer.complete(messages)
    answer_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    verdict = judge_question(dataset, q, answered.text.strip(), clients.judge)
    judge_ms = (time.perf_counter() - start) * 1000
    judged: Completion = verdict.pop("judge")
    return {
        "kind": "question",
        "id": q.id,
        "category": "abstention" if q.abstention else q.category,
        "question": q.text,
        "gold": q.gold,
        "answer": answered.text.strip(),
        **verdict,
        "context_tokens": sum(len(c) // 4 + 1 for c in context),
        "answer_tokens": _tokens(answered),
        "judge_tokens": _tokens(judged),
        "ms": {"search": search_ms, "answer": answer_ms, "judge": judge_ms},
    }


def _points(
    system: MemorySystem, conv: Conversation, session: Session, stored: list[str], judge: ChatClient
) -> dict[str, Any]:
    """HaluMem's judgements of one session's memory: coverage of each expected memory point
    (and of distractors), accuracy of each stored memory, and each update as searched."""
    points = conv.points.get(session.id, ())
    memories = "\n".join(stored) or "(none)"
    integrity: list[int | None] = []
    interference: list[int | None] = []
    accuracy: list[int | None] = []
    updates: list[str] = []

    def ask_json(prompt: str, key: str) -> Any:
        return _json_field(judge.complete([{"role": "user", "content": prompt}]).text, key)

    for p in points:
        if p.is_update and p.original:
            found = system.search(p.content, 10, session.when)
            result = ask_json(
                qa_prompts.HALUMEM_UPDATE.format(
                    original="\n".join(p.original), updated=p.content, found="\n".join(found)
                ),
                "evaluation_result",
            )
            updates.append(
                result if result in ("Correct", "Hallucination", "Omission") else "Other"
            )
            continue
        score = ask_json(
            qa_prompts.HALUMEM_INTEGRITY.format(memories=memories, point=p.content), "score"
        )
        score = int(score) if str(score) in ("0", "1", "2") else None
        (interference if p.source == "interference" else integrity).append(score)
    dialogue = "\n".join(f"{t.speaker}: {t.text}" for t in session.turns)
    golden = "\n".join(p.content for p in points if p.source != "interference")
    for memory in stored:
        score = ask_json(
            qa_prompts.HALUMEM_ACCURACY.format(dialogue=dialogue, golden=golden, memory=memory),
            "accuracy_score",
        )
        accuracy.append(int(score) if str(score) in ("0", "1", "2") else None)
    return {
        "kind": "session",
        "id": f"{conv.id}/{session.id}",
        "integrity": integrity,
        "interference": interference,
        "accuracy": accuracy,
        "updates": updates,
    }


def _done(checkpoint: Path) -> dict[str, dict[str, Any]]:
    if not checkpoint.exists():
        return {}
    done = {}
    for line in checkpoint.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash: that question runs again
            continue
        done[record["id"]] = record
    return done


def run(
    dataset: str,
    path: Path,
    system: MemorySystem,
    clients: Clients,
    *,
    k: int = 10,
    workdir: Path,
    checkpoint: Path,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``system`` on ``dataset`` at ``path`` (at most ``limit`` questions); the
    report (``report``). Records go to ``checkpoint`` as they finish."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")
    conversations = load(dataset, path)
    done = _done(checkpoint)
    workdir.mkdir(parents=True, exist_ok=True)
    asked = 0
    with checkpoint.open("a", encoding="utf-8") as out:

        def keep(record: dict[str, Any]) -> None:
            done[record["id"]] = record
            out.write(json.dumps(record, default=str) + "\n")
            out.flush()

        for conv in conversations:
            wanted = conv.questions if limit is None else conv.questions[: max(0, limit - asked)]
            asked += len(wanted)
            sessions_left = [s for s in conv.sessions if f"{conv.id}/{s.id}" not in done]
            if not [q for q in wanted if q.id not in done] and not (conv.points and sessions_left):
                continue
            reuse = system.open(conv, workdir)
            try:
                _conversation(
                    dataset, system, conv, wanted, done, keep, reuse, k, clients, progress
                )
            finally:
                system.close()
            if limit is not None and asked >= limit:
                break
    models = (clients.answer.name, clients.judge.name)
    prices = (clients.price_in, clients.price_out)
    return report(dataset, path, system.name, models, prices, list(done.values()), k)


def _conversation(
    dataset: str,
    system: MemorySystem,
    conv: Conversation,
    wanted: tuple[Question, ...],
    done: dict[str, Any],
    keep: Callable[[dict[str, Any]], None],
    reuse: bool,
    k: int,
    clients: Clients,
    progress: Callable[[str], None] | None,
) -> None:
    # HaluMem asks each session's questions right after it; the others after the last one
    after: dict[str, list[Question]] = {}
    for q in wanted:
        where = q.id.split("/")[1] if dataset == "halumem" else conv.sessions[-1].id
        after.setdefault(where, []).append(q)
    for session in conv.sessions:
        if not reuse:
            start = time.perf_counter()
            stored = system.add(session)
            add_ms = (time.perf_counter() - start) * 1000
            sid = f"{conv.id}/{session.id}"
            if conv.points and sid not in done:
                keep({**_points(system, conv, session, stored, clients.judge), "add_ms": add_ms})
            elif sid not in done:
                keep({"kind": "session", "id": sid, "add_ms": add_ms, "stored": len(stored)})
        for q in after.get(session.id, ()):
            if q.id not in done:
                keep(ask(dataset, system, q, k, clients))
                if progress:
                    progress(q.id)
    if not reuse:
        system.ingested()


def fresh(workdir: Path, checkpoint: Path) -> None:
    """Forget a previous run: its checkpoint and its cubes."""
    checkpoint.unlink(missing_ok=True)
    shutil.rmtree(workdir, ignore_errors=True)
