"""Session summaries by the user's chat model: ``SessionSummarizer`` as a cube's
``summarizer`` (``cube.maintenance.summarizer = SessionSummarizer(model)``).

Once a session has ``every`` turns no summary covers yet, the scheduler's ``summarize`` step
(a follow-up of the write, durable, retried and dead-lettered like extraction) asks the model
for a short summary of them and stores it as a memory of its own: source ``summary``, citing
the turns (``provenance.source_ids``), in the same user and session, dated by its last turn —
so a broad question ("what did we talk about last week?") can find it. ``cube.maintenance.
summarize(session=..., user=...)`` summarizes what is left of a session now (when it ends).
A session that then goes quiet for ``quiet_s`` (default 600 s) with turns left uncovered is
summarized by the scheduler's next lifecycle sweep. A summary's id is derived from the turns
it covers, so a retried step stores it once. With no summarizer set nothing is summarized.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from cubemem.chat import as_chat
from cubemem.errors import ExtractionError, InvalidInputError
from cubemem.llm import Message
from cubemem.model import MemoryItem

__all__ = ["SUMMARY_PROMPT", "SessionSummarizer"]

SUMMARY_PROMPT = """You keep a long-term memory of conversations. Summarize the session \
below in two to five sentences for later recall: what was discussed, what was decided or \
planned, and what was learned about the people (preferences, facts, events, with dates when \
said). State each fact once, even when the conversation repeats it. Write plain sentences \
in the third person; no preamble."""


class SessionSummarizer:
    """A summary of ``every`` turns at a time (at most ``max_turns`` in one call)."""

    def __init__(
        self,
        model: Any,
        *,
        every: int = 20,
        max_turns: int = 200,
        quiet_s: float | None = 600.0,
        system_prompt: str = SUMMARY_PROMPT,
    ) -> None:
        for name, value in (("every", every), ("max_turns", max_turns)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
        self.client = as_chat(model)
        self.every = every
        self.max_turns = max(max_turns, every)
        if quiet_s is not None and (isinstance(quiet_s, bool) or not quiet_s >= 0):
            raise InvalidInputError(f"quiet_s must be seconds >= 0 or None, got {quiet_s!r}")
        self.quiet_s = quiet_s
        self.waiting: dict[tuple[str | None, str], float] = {}
        """Sessions with turns no summary covers yet -> when they were last written
        (monotonic; this process's, so a restart forgets them until their next write)."""
        self.system_prompt = system_prompt
        self.usage = {"calls": 0, "turns": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()

    def __call__(self, turns: Sequence[MemoryItem]) -> str:
        lines = []
        for turn in turns:
            when = turn.provenance.occurred_at
            stamp = f"({when:%Y-%m-%d}) " if when else ""
            speaker = " ".join((turn.provenance.speaker or "someone").split())
            lines.append(f"{stamp}{speaker}: {' '.join(turn.content.split())}")
        messages: list[Message] = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": "Session:\n" + "\n".join(lines)},
        ]
        completion = self.client.complete(messages)
        with self._lock:
            self.usage["calls"] += 1
            self.usage["turns"] += len(turns)
            self.usage["prompt_tokens"] += completion.prompt_tokens
            self.usage["completion_tokens"] += completion.completion_tokens
        text = " ".join(completion.text.split())
        if not text:
            raise ExtractionError("the model answered an empty summary (the turns are stored)")
        return text
