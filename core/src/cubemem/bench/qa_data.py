"""The answer-level benchmarks' data, read into one shape: conversations of dated sessions of
turns, the questions asked after them, and (HaluMem) the memory points each session should
leave behind.

- **LoCoMo** (Maharana et al., ACL 2024): a JSON list of samples; ``conversation`` holds
  ``session_N`` turn lists and ``session_N_date_time``; ``qa`` holds question, answer,
  category (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop; 5, adversarial, is left
  out as the published LLM-judge evaluations do) and evidence turn ids.
- **LongMemEval** (Wu et al., ICLR 2025): a JSON list of instances, each one question with
  its own haystack: ``haystack_sessions`` (lists of ``{"role", "content", "has_answer"?}``),
  ``haystack_session_ids``, ``haystack_dates`` (``2023/05/20 (Sat) 02:21``),
  ``question_type``, ``question_date``, ``answer``; an id ending in ``_abs`` is an
  abstention question (the answer explains why it cannot be answered).
- **HaluMem** (Chen et al., 2025, arXiv 2511.03506): JSON lines, one user each, with
  ``sessions`` of ``dialogue`` turns (``role``, ``content``, ``timestamp`` as
  ``Jan 05, 2025, 10:00:00``), annotated ``memory_points`` (``memory_content``,
  ``memory_type``, ``memory_source`` — ``interference`` for distractors —, ``is_update``,
  ``original_memories``, ``importance``) and ``questions`` (``question``, ``answer``,
  ``evidence``, ``question_type``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cubemem.bench import locomo
from cubemem.errors import InvalidInputError

Dataset = Literal["locomo", "longmemeval", "halumem"]
DATASETS = ("locomo", "longmemeval", "halumem")


@dataclass(frozen=True)
class Turn:
    id: str
    speaker: str
    text: str


@dataclass(frozen=True)
class Session:
    id: str
    when: datetime | None
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class MemoryPoint:
    """A memory HaluMem expects a session to leave (or, ``interference``, not to)."""

    content: str
    kind: str
    source: str
    is_update: bool
    original: tuple[str, ...]
    importance: float


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    gold: str
    category: str
    asked_at: datetime | None
    abstention: bool = False
    evidence: tuple[str, ...] = ()
    """Evidence as text (HaluMem's evidence memories), for the judge."""


@dataclass(frozen=True)
class Conversation:
    id: str
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]
    points: dict[str, tuple[MemoryPoint, ...]] = field(default_factory=dict)
    """Session id -> its memory points (HaluMem)."""


def load(dataset: str, path: Path) -> list[Conversation]:
    """The conversations of ``path`` in ``dataset``'s format, in file order."""
    if dataset not in DATASETS:
        raise InvalidInputError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {dataset} file {path}: {exc}") from exc
    try:
        if dataset == "halumem":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            return [_halumem(row, n) for n, row in enumerate(rows)]
        data = json.loads(text)
        if dataset == "locomo":
            return [_locomo(sample, n) for n, sample in enumerate(locomo.load(Path(path)))]
        if not isinstance(data, list):
            raise InvalidInputError(f"{path} is not LongMemEval: expected a JSON list")
        return [_longmemeval(item) for item in data]
    except (KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(f"{path} is not a {dataset} file: {exc!r}") from exc


def _locomo(sample: dict[str, Any], n: int) -> Conversation:
    sessions = tuple(
        Session(key, when, tuple(Turn(m["id"], m["speaker"], m["text"]) for m in messages))
        for key, when, messages in locomo.sessions(sample)
    )
    asked = locomo.asked_at(sample)
    name = str(sample.get("sample_id", f"conv-{n}"))
    questions = tuple(
        Question(
            f"{name}/q{i}",
            qa["question"],
            str(qa["answer"]),
            locomo.CATEGORY_NAMES[qa["category"]],
            asked,
        )
        for i, qa in enumerate(sample["qa"])
        if qa.get("category") in locomo.CATEGORIES and "answer" in qa
    )
    return Conversation(name, sessions, questions)


def _lme_time(text: str) -> datetime:
    """LongMemEval's ``2023/05/20 (Sat) 02:21``."""
    return datetime.strptime(text.strip(), "%Y/%m/%d (%a) %H:%M").replace(tzinfo=UTC)


def _longmemeval(item: dict[str, Any]) -> Conversation:
    qid = str(item["question_id"])
    sessions = []
    for sid, when, turns in zip(
        item["haystack_session_ids"], item["haystack_dates"], item["haystack_sessions"], strict=True
    ):
        sessions.append(
            Session(
                str(sid),
                _lme_time(when),
                tuple(
                    Turn(f"{sid}:{i}", turn["role"], turn["content"])
                    for i, turn in enumerate(turns)
                ),
            )
        )
    question = Question(
        qid,
        item["question"],
        str(item["answer"]),
        str(item["question_type"]),
        _lme_time(item["question_date"]),
        abstention=qid.endswith("_abs"),
    )
    return Conversation(qid, tuple(sessions), (question,))


def _halumem_time(text: str) -> datetime:
    return datetime.strptime(text.strip(), "%b %d, %Y, %H:%M:%S").replace(tzinfo=UTC)


def _halumem(row: dict[str, Any], n: int) -> Conversation:
    user = str(row.get("uuid", f"user-{n}"))
    sessions, points, questions = [], {}, []
    for s, session in enumerate(row["sessions"]):
        sid = f"s{s}"
        turns = tuple(
            Turn(f"{sid}:{i}", t["role"], t["content"]) for i, t in enumerate(session["dialogue"])
        )
        stamps = [t["timestamp"] for t in session["dialogue"] if t.get("timestamp")]
        when = _halumem_time(stamps[0]) if stamps else None
        sessions.append(Session(sid, when, turns))
        if session.get("is_generated_qa_session"):
            continue
        points[sid] = tuple(
            MemoryPoint(
                p["memory_content"],
                str(p.get("memory_type", "")),
                str(p.get("memory_source", "")),
                str(p.get("is_update", "False")) == "True",
                tuple(p.get("original_memories") or ()),
                float(p.get("importance", 1.0)),
            )
            for p in session.get("memory_points", ())
        )
        last = _halumem_time(stamps[-1]) if stamps else None
        for q, qa in enumerate(session.get("questions", ())):
            questions.append(
                Question(
                    f"{user}/{sid}/q{q}",
                    qa["question"],
                    str(qa["answer"]),
                    str(qa.get("question_type", "qa")),
                    last,
                    evidence=tuple(e["memory_content"] for e in qa.get("evidence", ())),
                )
            )
    return Conversation(user, tuple(sessions), tuple(questions), points)
