"""Query expansion with the user's chat model, for questions an inference step away from the
memory that answers them ("what should I cook, given my diet?" needs "Ana is vegetarian",
which shares none of its words).

``QueryExpander(model)`` asks the model (anything ``cubemem.chat.as_chat`` takes) for up to
``n`` short search queries naming what the answer depends on; ``search`` runs the question and
each of them and keeps every memory once, at its best relevance (so ``min_score`` reads each
memory against the query it matches). A model that fails or answers nothing usable leaves the
question alone: expansion never makes recall fail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from cubemem.chat import as_chat
from cubemem.errors import InvalidInputError
from cubemem.facts import FENCE
from cubemem.model import SearchResult

__all__ = ["EXPAND_PROMPT", "QueryExpander"]

log = logging.getLogger(__name__)

EXPAND_PROMPT = """You help a memory system find what it knows about a user. Given the \
user's message, write up to {n} short search queries for the stored facts the answer depends \
on — name the topic, not the question: "what should I cook, given my diet?" -> ["diet", \
"vegetarian or vegan", "food allergies"]; "when should I leave for the airport?" -> \
["flight departure time", "travel plans"]. Answer only JSON: {{"queries": ["..."]}}."""


class Queries(BaseModel):
    queries: list[str] = Field(default_factory=list, max_length=10)


SCHEMA: dict[str, Any] = Queries.model_json_schema()


class QueryExpander:
    """Search queries for a question, from a chat model."""

    def __init__(self, model: Any, *, n: int = 3) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
            raise InvalidInputError(f"n must be an int from 1 to 10, got {n!r}")
        self.client = as_chat(model)
        self.n = n
        self.usage = {"calls": 0, "failures": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def queries(self, question: str) -> list[str]:
        """The model's queries for ``question`` (without it); [] when it gives none."""
        messages = [
            {"role": "system", "content": EXPAND_PROMPT.format(n=self.n)},
            {"role": "user", "content": question},
        ]
        try:
            completion = self.client.complete(messages, schema=SCHEMA)
            self.usage["calls"] += 1
            self.usage["prompt_tokens"] += completion.prompt_tokens
            self.usage["completion_tokens"] += completion.completion_tokens
            found = _parse(completion.text)
        except Exception as exc:  # an outage or an unusable answer: search the question alone
            self.usage["failures"] += 1
            log.warning("query expansion failed, searching the question alone: %s", exc)
            return []
        seen = {" ".join(question.casefold().split())}
        out = []
        for query in found:
            text = " ".join(query.split())[:300]
            if text and text.casefold() not in seen:
                seen.add(text.casefold())
                out.append(text)
        return out[: self.n]

    def search(
        self, search: Callable[[str], Sequence[SearchResult]], question: str
    ) -> list[SearchResult]:
        """``search`` (query -> results) over the question and its expansions: each memory
        once, at its best relevance, best first."""
        best: dict[str, SearchResult] = {}
        order: dict[str, int] = {}
        for query in [question, *self.queries(question)]:
            for result in search(query):
                known = best.get(result.id)
                if known is None or result.relevance > known.relevance:
                    best[result.id] = result
                order.setdefault(result.id, len(order))
        return sorted(best.values(), key=lambda r: (-r.relevance, order[r.id]))


def _parse(text: str) -> list[str]:
    for candidate in [m.group(1) for m in FENCE.finditer(text)] + [text]:
        start = min((i for i in (candidate.find("{"), candidate.find("[")) if i >= 0), default=-1)
        if start < 0:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate[start:])
            if isinstance(value, list):
                value = {"queries": value}
            return [str(q) for q in Queries.model_validate(value).queries]
        except (json.JSONDecodeError, ValidationError):
            continue
    raise InvalidInputError("no queries JSON in the answer")
