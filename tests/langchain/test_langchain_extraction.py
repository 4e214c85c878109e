"""Extraction with the LangChain chat model the user already has (``cubemem.chat``): real
``langchain_core`` fake models, structured output through ``with_structured_output`` where the
model binds tools, plain text and the repair round where it does not, and a failing model
that loses no turn."""

from __future__ import annotations

import json
import time

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from lc_helpers import scripted, tool_call

from cubemem import FollowUpError, MemCube
from cubemem.chat import LangChainChat, as_chat
from cubemem.errors import BackendUnavailableError, InvalidInputError
from cubemem.extract import LLMExtractor

TURNS = [
    {"speaker": "user", "text": "Please remember that I'm allergic to peanuts"},
    {"speaker": "assistant", "text": "Noted."},
    {"speaker": "user", "text": "And I moved to Lisbon in March"},
]
FACTS = {
    "facts": [
        {"text": "The user is allergic to peanuts", "kind": "fact", "source_ids": ["t1"]},
        {
            "text": "The user lives in Lisbon",
            "subject": "user",
            "relation": "lives_in",
            "object": "Lisbon",
            "kind": "fact",
            "time": "2026-03-01",
            "source_ids": ["t3"],
        },
    ]
}


def _facts(cube: MemCube) -> dict[str, list[str]]:
    return {
        m.content: m.provenance.source_ids
        for m in cube.list(filters={"user": "ana"}, limit=50)
        if m.provenance.source == "extract"
    }


def test_structured_output_through_tool_calling(tmp_path, embedder):
    """A model that binds tools answers with a tool call named after the schema; the facts
    are its arguments, and they cite the turns they came from."""
    model = scripted(tool_call("Facts", "c1", **FACTS))
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        extractor = LLMExtractor(model, decide=False)
        cube.maintenance.extractor = extractor
        turns = cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
        facts = _facts(cube)
        assert isinstance(extractor.client, LangChainChat) and extractor.client.structured
        assert set(facts) == {"The user is allergic to peanuts", "The user lives in Lisbon"}
        ids = {t.id for t in turns}
        assert all(set(sources) <= ids for sources in facts.values())
        assert len(model.received) == 1  # one call, no repair


def test_a_model_without_tools_answers_in_text_and_gets_a_repair_round(tmp_path, embedder):
    """``GenericFakeChatModel`` cannot bind tools: the prompt asks for JSON, the first answer
    is prose, the repair round gets the JSON."""
    model = GenericFakeChatModel(
        messages=iter(["Sure! Here are the facts.", f"```json\n{json.dumps(FACTS)}\n```"])
    )
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        extractor = LLMExtractor(model, decide=False)
        cube.maintenance.extractor = extractor
        cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
        assert len(_facts(cube)) == 2
        assert extractor.client.structured is False  # type: ignore[attr-defined]
        assert extractor.usage["repairs"] == 1 and extractor.usage["calls"] == 2


def test_the_same_model_decides_updates(tmp_path, embedder):
    """The decider asks the same LangChain model; a structured UPDATE replaces the fact."""
    first = {"facts": [{"text": "The user lives in Porto", "source_ids": ["t1"]}]}
    second = {"facts": [{"text": "The user lives in Lisbon now", "source_ids": ["t1"]}]}
    decision = {"decision": "UPDATE", "target": "c1", "reason": "moved"}
    model = scripted(
        tool_call("Facts", "a", **first),
        tool_call("Facts", "b", **second),
        tool_call("DecisionAnswer", "c", **decision),
    )
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        cube.maintenance.extractor = LLMExtractor(model)
        cube.add_messages([TURNS[0] | {"text": "I live in Porto"}], scope={"user": "ana"})
        cube.add_messages([TURNS[0] | {"text": "I moved to Lisbon"}], scope={"user": "ana"})
        assert list(_facts(cube)) == ["The user lives in Lisbon now"]


def test_a_failing_model_is_a_typed_error_and_keeps_the_turns(tmp_path, embedder):
    class Broken(GenericFakeChatModel):
        def _generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("quota exceeded")

    chat = as_chat(Broken(messages=iter([])))
    with pytest.raises(BackendUnavailableError, match="quota exceeded"):
        chat.complete([{"role": "user", "content": "hi"}])
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        cube.maintenance.extractor = LLMExtractor(Broken(messages=iter([])), decide=False)
        with pytest.raises(FollowUpError) as raised:
            cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
        assert "quota exceeded" in str(raised.value)
        assert cube.count({"user": "ana"}) == 3  # every turn kept


def test_something_that_is_not_a_model_is_refused_with_what_to_pass():
    with pytest.raises(InvalidInputError, match="LangChain chat model"):
        LLMExtractor(object())
    with pytest.raises(InvalidInputError, match="LlamaIndex LLM"):
        as_chat(AIMessage("not a model"))


SESSION = [
    {"speaker": "user", "text": "We're planning the trip to Oslo for May"},
    {"speaker": "assistant", "text": "Shall I look at flights from Lisbon?"},
    {"speaker": "user", "text": "Yes, and a hotel near the harbour, under 150 a night"},
    {"speaker": "assistant", "text": "The Thon Hotel Opera fits that."},
    {"speaker": "user", "text": "Book it for the 12th to the 15th"},
]
SUMMARY = (
    "The user planned a May trip to Oslo from Lisbon and booked the Thon Hotel Opera near "
    "the harbour (under 150 a night) for 12-15 May."
)


def test_a_session_summary_is_written_in_the_background_and_recalled(tmp_path, embedder):
    from cubemem.summarize import SessionSummarizer

    model = GenericFakeChatModel(messages=iter([SUMMARY]))
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        cube.maintenance.summarizer = SessionSummarizer(model, every=4)
        ids = cube.add_messages(SESSION, session="trip", scope={"user": "ana"}, wait=False)
        assert cube.scheduler.wait(ids, timeout=60) and cube.scheduler.wait(timeout=60)
        (summary,) = [m for m in cube.list({"user": "ana"}) if m.provenance.source == "summary"]
        assert summary.content == SUMMARY and summary.scope.session == "trip"
        turns = [m for m in cube.list({"user": "ana"}) if m.provenance.source == "message"]
        assert len(turns) == 5 and set(summary.provenance.source_ids) == {
            s for t in turns for s in (t.provenance.source_ids or [t.id])
        }  # all five: the step reads the whole uncovered session
        hits = cube.search("what did we talk about for the trip?", k=3, filters={"user": "ana"})
        assert summary.id in [h.id for h in hits]
        # nothing left to cover: asking again calls no model and stores nothing
        assert cube.maintenance.summarize("trip", user="ana") == []


def test_a_failing_summary_model_loses_nothing_and_is_replayed(tmp_path, embedder):
    from cubemem import Settings
    from cubemem.summarize import SessionSummarizer

    class Flaky(GenericFakeChatModel):
        down: bool = True

        def _generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if self.down:
                raise RuntimeError("the summary model is down")
            return super()._generate(*args, **kwargs)

    model = Flaky(messages=iter([SUMMARY]))
    settings = Settings(max_attempts=2, retry_backoff_s=0.01)
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=settings) as cube:
        cube.maintenance.summarizer = SessionSummarizer(model, every=5)
        ids = cube.add_messages(SESSION, session="trip", scope={"user": "ana"}, wait=False)
        assert cube.scheduler.wait(ids, timeout=60)
        deadline = time.monotonic() + 30
        while not cube.scheduler.status().failed and time.monotonic() < deadline:
            time.sleep(0.05)
        (failed,) = cube.scheduler.status().failed
        assert "BackendUnavailableError" in failed.error and "is down" in failed.error
        assert cube.count({"user": "ana"}) == 5  # every turn kept
        model.down = False
        assert cube.scheduler.retry_failed() == 1 and cube.scheduler.wait(timeout=60)
        summaries = [m for m in cube.list({"user": "ana"}) if m.provenance.source == "summary"]
        assert [m.content for m in summaries] == [SUMMARY]


def test_a_quiet_session_is_summarized_by_the_sweep(tmp_path, embedder):
    """Fewer turns than ``every``: no summary while the session is active; once it has been
    quiet for ``quiet_s`` the scheduler's lifecycle sweep summarizes what is left."""
    from cubemem import Settings
    from cubemem.summarize import SessionSummarizer

    model = GenericFakeChatModel(messages=iter([SUMMARY]))
    settings = Settings(lifecycle_interval_s=0.2)
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=settings) as cube:
        summarizer = SessionSummarizer(model, every=50, quiet_s=0.5)
        cube.maintenance.summarizer = summarizer
        ids = cube.add_messages(SESSION, session="trip", scope={"user": "ana"}, wait=False)
        assert cube.scheduler.wait(ids, timeout=60) and cube.scheduler.wait(timeout=60)
        deadline = time.monotonic() + 30

        def summaries() -> list:
            return [m for m in cube.list({"user": "ana"}) if m.provenance.source == "summary"]

        while not summaries() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [m.content for m in summaries()] == [SUMMARY] and summarizer.usage["calls"] == 1
        assert len(summaries()[0].provenance.source_ids) == 5
