"""MemReader: conversation turns in, facts out — as a cube's ``extractor``.

``RawExtractor`` keeps turns as they are (no facts). ``LLMExtractor`` asks a chat model
(whatever ``cubemem.chat.as_chat`` accepts: a LangChain chat model, a LlamaIndex LLM, a
transformers pipeline, ``cubemem.llm.OpenAIChat`` for an endpoint) for the durable facts in
a window of turns, as JSON checked against the ``Fact`` schema (structured output where the
model has it); output that is not valid gets one repair round, then ``ExtractionError``.
The scheduler's extract task runs it after the turns are stored (they are never lost: a
failing extraction is retried, then dead-lettered with its error, and ``cubemem scheduler
retry`` replays it). Each fact cites the turns it came from — only turns of the window; a fact
that cites none of them cites the whole window — and inherits their scope and session
(``cubemem.ops.followup``).

```python
from cubemem.extract import LLMExtractor
from cubemem.llm import OpenAIChat

cube.maintenance.extractor = LLMExtractor(OpenAIChat("qwen2.5:7b", base_url="http://localhost:11434/v1"))
cube.add_messages(turns, session="s1", wait=False)  # turns now; facts moments later
```
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cubemem.chat import as_chat
from cubemem.errors import ExtractionError, InvalidInputError
from cubemem.facts import FENCE, SCHEMA, Fact, FactKind, Facts, parse_facts
from cubemem.llm import ChatClient, Message
from cubemem.model import MemoryInput, MemoryItem, as_utc

__all__ = [
    "SCHEMA",
    "Decider",
    "Fact",
    "FactKind",
    "Facts",
    "LLMDecider",
    "LLMExtractor",
    "RawExtractor",
    "Verdict",
    "parse_facts",
    "similarity_rule",
]

SYSTEM_PROMPT = """You read conversation turns and write down the durable facts they state \
about the people in them: preferences, biographical facts, events with their dates, plans, \
relationships. Each fact is one short, self-contained sentence naming its subject (write \
"Ana prefers tea", not "she likes it"). Skip greetings, questions, small talk and anything \
only the assistant guesses. Cite the ids of the turns each fact comes from. Give a date \
(YYYY-MM-DD) only when the turns state or imply one.

Answer with one JSON object and nothing else:
{"facts": [{"text": "...", "subject": "...", "kind": \
"preference|fact|event|plan|relationship|other", "time": "YYYY-MM-DD or null", \
"relation": "lives_in|works_at|friend_of|... or null", "object": "the other person, place or \
thing, or null", "confidence": 0.0-1.0, "source_ids": ["t1"]}]}
When a fact relates its subject to another person, place, organisation or thing, give that \
one as "object" and the relation in a few words as "relation".
Answer {"facts": []} when there is nothing worth remembering."""


class RawExtractor:
    """Turns are the memories; nothing is extracted (the default when no model is set)."""

    def __call__(self, turns: Sequence[MemoryItem]) -> list[MemoryInput]:
        return []


class LLMExtractor:
    """Facts from a chat model, ``window`` turns per call (one call per window).

    ``usage`` counts calls, repair rounds and tokens over the extractor's life; extraction
    cost per turn is ``usage["prompt_tokens"] / usage["turns"]``. Where a new fact lands among
    the owner's current facts is decided by the same model (``decider``, an ``LLMDecider``)
    unless ``decide=False`` or the cube has a ``decider`` of its own.
    """

    def __init__(
        self,
        client: ChatClient | Any,
        *,
        window: int = 20,
        system_prompt: str = SYSTEM_PROMPT,
        min_confidence: float = 0.0,
        max_facts_per_window: int = 50,
        max_calls_per_add: int | None = None,
        max_prompt_tokens: int | None = None,
        decide: bool = True,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise InvalidInputError(f"window must be a positive int, got {window!r}")
        self.client = client = as_chat(client)
        self.window = window
        self.system_prompt = system_prompt
        self.min_confidence = min_confidence
        self.max_facts = max_facts_per_window
        self.max_calls = max_calls_per_add
        self.max_prompt_tokens = max_prompt_tokens
        self.decider: LLMDecider | None = LLMDecider(client) if decide else None
        """Update decisions by the same model (``decide=False``: the similarity rule); a
        cube's own ``decider``, when set, takes precedence."""
        self.usage = {"calls": 0, "repairs": 0, "turns": 0, "prompt_tokens": 0,
                      "completion_tokens": 0, "facts": 0, "uncited": 0}  # fmt: skip
        self._lock = threading.Lock()

    def __call__(self, turns: Sequence[MemoryItem]) -> list[MemoryInput]:
        ordered = sorted(turns, key=lambda t: t.event_time)  # stable: ties keep their order
        windows = self._windows(ordered)
        out: list[MemoryInput] = []
        for window in windows:
            out += self._window(window)
        return out

    def _windows(self, turns: list[MemoryItem]) -> list[list[MemoryItem]]:
        """Turns batched into calls: ``window`` turns each — more when ``max_calls_per_add``
        asks for fewer calls, fewer when a window would pass ``max_prompt_tokens`` (estimated
        at four characters a token). A batch that cannot fit both is ``ExtractionError``
        (the turns are stored; the task is dead-lettered with the reason)."""
        size = self.window
        if self.max_calls:
            size = max(size, -(-len(turns) // self.max_calls))
        windows: list[list[MemoryItem]] = []
        budget = self.max_prompt_tokens
        for turn in turns:
            cost = (len(turn.content) + 40) // 4
            current = windows[-1] if windows else None
            used = sum((len(t.content) + 40) // 4 for t in current) if current else 0
            if current is None or len(current) >= size or (budget and used + cost > budget):
                windows.append([turn])
            else:
                current.append(turn)
        if self.max_calls and len(windows) > self.max_calls:
            raise ExtractionError(
                f"{len(turns)} turns need {len(windows)} calls within max_prompt_tokens="
                f"{self.max_prompt_tokens}, over max_calls_per_add={self.max_calls}; raise a "
                "budget (the turns are stored)"
            )
        return windows

    def _window(self, turns: Sequence[MemoryItem]) -> list[MemoryInput]:
        labels = {f"t{n}": turn for n, turn in enumerate(turns, start=1)}
        lines = []
        for label, turn in labels.items():
            when = turn.provenance.occurred_at
            stamp = f" ({when:%Y-%m-%d})" if when else ""
            speaker = " ".join((turn.provenance.speaker or "someone").split())
            lines.append(f"[{label}]{stamp} {speaker}: {' '.join(turn.content.split())}")
        messages: list[Message] = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": "Turns:\n" + "\n".join(lines)},
        ]
        answer = self._ask(messages, len(turns))
        try:
            facts = parse_facts(answer)
        except ExtractionError as exc:
            with self._lock:
                self.usage["repairs"] += 1
            messages += [
                {"role": "assistant", "content": answer[:4000]},
                {
                    "role": "user",
                    "content": f"That answer could not be used: {exc}. Answer again with only "
                    'the JSON object {"facts": [...]} described above.',
                },
            ]
            facts = parse_facts(self._ask(messages, 0))  # a second failure is ExtractionError
        return self._inputs(facts, labels)

    def _ask(self, messages: list[Message], turns: int) -> str:
        completion = self.client.complete(messages, schema=SCHEMA)
        with self._lock:
            self.usage["calls"] += 1
            self.usage["turns"] += turns
            self.usage["prompt_tokens"] += completion.prompt_tokens
            self.usage["completion_tokens"] += completion.completion_tokens
        return completion.text

    def _inputs(self, facts: list[Fact], labels: dict[str, MemoryItem]) -> list[MemoryInput]:
        out = []
        for fact in facts[: self.max_facts]:
            if fact.confidence < self.min_confidence:
                continue
            cited = [labels[s] for s in dict.fromkeys(fact.source_ids) if s in labels]
            if not cited:
                with self._lock:
                    self.usage["uncited"] += 1
                cited = list(labels.values())  # cite the window rather than nothing
            sources = [s for t in cited for s in (t.provenance.source_ids or [t.id])]
            metadata: dict[str, str | float] = {"kind": fact.kind, "confidence": fact.confidence}
            for field in ("subject", "relation", "object"):
                value = getattr(fact, field)
                if value and value.strip():
                    metadata[field] = " ".join(value.split())
            out.append(
                MemoryInput(
                    content=fact.text,
                    source_ids=list(dict.fromkeys(sources)),
                    occurred_at=_when(fact.time) or cited[-1].provenance.occurred_at,
                    metadata=metadata,
                )
            )
        with self._lock:
            self.usage["facts"] += len(out)
        return out


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            day = date.fromisoformat(text.strip()[:10])
        except ValueError:
            return None
        parsed = datetime(day.year, day.month, day.day)
    try:
        return as_utc(parsed)
    except OverflowError:
        return None


DECIDE_PROMPT = """You keep a memory of facts about people. A new fact arrived; compare it with \
the existing facts below and decide:
- ADD: it is new information;
- DUPLICATE: an existing fact already says the same (name it);
- UPDATE: it refines or changes an existing fact about the same thing, which should now read \
as the new fact (name it);
- CONTRADICT: it makes an existing fact false (it is no longer true; name it).
Answer with one JSON object and nothing else: \
{"decision": "ADD|DUPLICATE|UPDATE|CONTRADICT", "target": "c1 or null", "reason": "..."}"""


DecisionKind = Literal["ADD", "UPDATE", "DUPLICATE", "CONTRADICT"]
DUPLICATE_AT = 0.92
UPDATE_AT = 0.7


@dataclass(frozen=True)
class Verdict:
    decision: DecisionKind
    target: str | None = None
    """The existing memory a non-ADD decision applies to."""
    reason: str = ""


Decider = Callable[[MemoryItem, Sequence[tuple[MemoryItem, float]]], Verdict]
"""(new fact, [(candidate, cosine)] best first) -> verdict."""


def _same(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def similarity_rule(fact: MemoryItem, candidates: Sequence[tuple[MemoryItem, float]]) -> Verdict:
    """The deterministic decision used without an LLM decider (see the module docstring)."""
    for existing, cosine in candidates:
        if _same(existing.content, fact.content) or cosine >= DUPLICATE_AT:
            return Verdict("DUPLICATE", existing.id, f"same fact (cosine {cosine:.2f})")
    subject = str(fact.metadata.get("subject") or "").casefold()
    kind = fact.metadata.get("kind")
    for existing, cosine in candidates:
        theirs = str(existing.metadata.get("subject") or "").casefold()
        same = subject and theirs == subject and existing.metadata.get("kind") == kind
        if same and cosine >= UPDATE_AT:
            return Verdict("UPDATE", existing.id, f"same subject and kind, cosine {cosine:.2f}")
    return Verdict("ADD", None, "no close fact of the same owner")


class DecisionAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    decision: Literal["ADD", "UPDATE", "DUPLICATE", "CONTRADICT"]
    target: str | None = None
    reason: str = ""

    @field_validator("decision", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


DECISION_SCHEMA: dict[str, Any] = DecisionAnswer.model_json_schema()


class LLMDecider:
    """Update decisions by a chat model (``cube.maintenance.decider = LLMDecider(client)``). With no
    close fact the answer is ADD without a call; an answer that cannot be used falls back to
    the similarity rule (the reason says so) — a decision never blocks storing a fact."""

    def __init__(self, client: ChatClient | Any) -> None:
        self.client = as_chat(client)
        self.usage = {"calls": 0, "fallbacks": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()

    def __call__(self, fact: MemoryItem, candidates: Sequence[tuple[MemoryItem, float]]) -> Any:
        if not candidates:
            return Verdict("ADD", None, "no existing fact of this owner is close")
        labels = {f"c{n}": item for n, (item, _) in enumerate(candidates, start=1)}
        listing = "\n".join(f"[{label}] {item.content}" for label, item in labels.items())
        messages: list[Message] = [
            {"role": "system", "content": DECIDE_PROMPT},
            {"role": "user", "content": f"New fact: {fact.content}\n\nExisting facts:\n{listing}"},
        ]
        try:
            completion = self.client.complete(messages, schema=DECISION_SCHEMA)
            with self._lock:
                self.usage["calls"] += 1
                self.usage["prompt_tokens"] += completion.prompt_tokens
                self.usage["completion_tokens"] += completion.completion_tokens
            answer = _decision(completion.text)
            if answer.decision != "ADD" and answer.target not in labels:
                raise ExtractionError(f"the answer names no listed fact ({answer.target!r})")
        except Exception as exc:  # an outage or an unusable answer: decide without the model
            with self._lock:
                self.usage["fallbacks"] += 1
            rule = similarity_rule(fact, candidates)
            return Verdict(rule.decision, rule.target, f"{rule.reason} (model unusable: {exc})")
        target = labels[answer.target].id if answer.target in labels else None
        return Verdict(answer.decision, target, answer.reason)


def _decision(text: str) -> DecisionAnswer:
    for candidate in [m.group(1) for m in FENCE.finditer(text)] + [text]:
        start = candidate.find("{")
        if start < 0:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate[start:])
            return DecisionAnswer.model_validate(value)
        except (json.JSONDecodeError, ValidationError):
            continue
    raise ExtractionError("no decision JSON in the answer")
