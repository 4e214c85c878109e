"""MemReader's extraction over the real HTTP path: an OpenAI-compatible chat server on loopback
replays scripted completions (success, fenced JSON, garbage, 429 with Retry-After, 5xx, a
timeout, the server down). Turns are stored first, always; facts cite turns that exist and
inherit their owner; a failed extraction is dead-lettered and replayable."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cubemem import (
    BackendUnavailableError,
    ExtractionError,
    FollowUpError,
    MemCube,
    Settings,
)
from cubemem.extract import LLMExtractor, parse_facts
from cubemem.llm import Completion, OpenAIChat

TURNS = [
    {"speaker": "Ana", "text": "I moved to Porto last spring", "id": "m1"},
    {"speaker": "Ben", "text": "Nice! Do you still drink green tea?", "id": "m2"},
    {"speaker": "Ana", "text": "Yes, every morning, no sugar", "id": "m3"},
]
FACTS = {
    "facts": [
        {"text": "Ana lives in Porto", "subject": "Ana", "kind": "fact", "source_ids": ["t1"]},
        {
            "text": "Ana drinks green tea every morning without sugar",
            "subject": "Ana",
            "kind": "preference",
            "confidence": 0.9,
            "source_ids": ["t2", "t3"],
        },
    ]
}


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


class _Chat(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions`` answering from a script; when it runs out, the last
    entry repeats."""

    script: ClassVar[deque] = deque()
    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        step = self.script.popleft() if len(self.script) > 1 else self.script[0]
        status, headers, payload, delay = step
        time.sleep(delay)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def log_message(self, *args) -> None:
        pass


def ok(content: str | dict, delay: float = 0.0):
    text = content if isinstance(content, str) else json.dumps(content)
    return (200, {}, completion(text), delay)


def error(status: int, headers: dict | None = None):
    return (status, headers or {}, {"error": {"message": f"scripted {status}"}}, 0.0)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Chat.script, _Chat.requests = deque([ok(FACTS)]), []

    def play(*steps):
        _Chat.script = deque(steps)

    play.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"  # type: ignore[attr-defined]
    yield play
    httpd.shutdown()
    httpd.server_close()


def chat(server, **kwargs) -> OpenAIChat:
    options = {"backoff_s": 0.01, "max_wait_s": 2.0, "timeout": 5.0} | kwargs
    return OpenAIChat("scripted", base_url=server.url, **options)


def test_parse_facts_is_tolerant_and_strict_where_it_matters():
    plain = json.dumps(FACTS)
    assert parse_facts(plain)[0].text == "Ana lives in Porto"
    fenced = f"Here you go:\n```json\n{plain}\n```\nHope this helps!"
    assert len(parse_facts(fenced)) == 2
    assert len(parse_facts("Sure! " + plain + " Let me know.")) == 2
    assert parse_facts(json.dumps(FACTS["facts"]))[1].kind == "preference"  # a bare list
    assert parse_facts('{"facts": [{"text": "x", "kind": "gossip"}]}')[0].kind == "other"
    for bad in ("", "I could not find any facts.", '{"facts": [{"txt": "x"}]}', "{oops"):
        with pytest.raises(ExtractionError):
            parse_facts(bad)


def test_facts_are_stored_with_their_owner_and_cite_their_turns(cube, server):
    cube.maintenance.extractor = LLMExtractor(chat(server), decide=False)
    cube.add_messages(TURNS, session="s1", scope={"user": "ana"}, timestamp="2024-05-02T10:00:00")
    facts = cube.list({"user": "ana", "session": "s1"})
    extracted = {f.content: f for f in facts if f.provenance.source == "extract"}
    tea_text = "Ana drinks green tea every morning without sugar"
    assert set(extracted) == {"Ana lives in Porto", tea_text}
    tea = extracted[tea_text]
    assert tea.provenance.source_ids == ["m2", "m3"] and tea.scope.user == "ana"
    assert tea.metadata == {"kind": "preference", "confidence": 0.9, "subject": "Ana"}
    hits = cube.search("what does Ana drink?", k=5, filters={"user": "ana"})
    assert tea_text in [h.content for h in hits]  # a user-filtered search finds the fact
    request = _Chat.requests[0]
    assert request["response_format"]["type"] == "json_schema"
    assert (
        "[t1] (2024-05-02) Ana: I moved to Porto last spring" in request["messages"][1]["content"]
    )


def test_a_server_without_json_schema_and_a_fenced_answer(cube, server):
    server(error(400), ok(f"```json\n{json.dumps(FACTS)}\n```"))
    client = chat(server)
    cube.maintenance.extractor = LLMExtractor(client, decide=False)
    cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
    assert client.structured is False and "response_format" not in _Chat.requests[-1]
    assert cube.count({"user": "ana"}) == 5


def test_invalid_output_gets_one_repair_round(cube, server):
    server(ok("Ana lives in Porto and likes tea."), ok(FACTS))
    extractor = LLMExtractor(chat(server), decide=False)
    cube.maintenance.extractor = extractor
    cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
    assert extractor.usage["repairs"] == 1 and extractor.usage["calls"] == 2
    assert "could not be used" in _Chat.requests[-1]["messages"][-1]["content"]
    assert cube.count({"user": "ana"}) == 5


def test_429_with_retry_after_then_success(cube, server):
    server(error(429, {"Retry-After": "0.5"}), error(503), ok(FACTS))
    cube.maintenance.extractor = LLMExtractor(chat(server), decide=False)
    started = time.monotonic()
    cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
    assert time.monotonic() - started >= 0.5  # the server's Retry-After was honoured
    assert len(_Chat.requests) == 3 and cube.count({"user": "ana"}) == 5


def test_a_timeout_is_retried(cube, server):
    server(ok(FACTS, delay=1.5), ok(FACTS))
    cube.maintenance.extractor = LLMExtractor(chat(server, timeout=0.5))
    cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
    assert cube.count({"user": "ana"}) == 5


def test_server_down_keeps_the_turns(cube):
    client = OpenAIChat("scripted", base_url="http://127.0.0.1:9/v1", attempts=2, backoff_s=0.01)
    with pytest.raises(BackendUnavailableError, match="2 attempt"):
        client.complete([{"role": "user", "content": "hi"}])
    cube.maintenance.extractor = LLMExtractor(client, decide=False)
    with pytest.raises(FollowUpError) as raised:
        cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
    assert len(raised.value.ids) == 3 and cube.count({"user": "ana"}) == 3  # turns kept


def test_a_failing_extraction_is_dead_lettered_then_replayed(tmp_path, embedder, server):
    server(ok("no JSON here"))  # every answer unusable, repair included
    settings_ = Settings(max_attempts=2, retry_backoff_s=0.01)
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=settings_) as cube:
        cube.maintenance.extractor = LLMExtractor(chat(server), decide=False)
        ids = cube.add_messages(TURNS, session="s1", scope={"user": "ana"}, wait=False)
        assert cube.scheduler.wait(ids, timeout=60)
        deadline = time.monotonic() + 30
        while not cube.scheduler.status().failed and time.monotonic() < deadline:
            time.sleep(0.05)
        (failed,) = cube.scheduler.status().failed
        assert "ExtractionError" in failed.error
        turns = {h.content for h in cube.search("green tea", k=3)}
        assert turns == {t["text"] for t in TURNS}  # the turns stay searchable
        server(ok(FACTS))  # the endpoint is fixed: replay
        assert cube.scheduler.retry_failed() == 1
        assert cube.scheduler.wait(timeout=60)
        assert cube.count({"user": "ana"}) == 5 and cube.scheduler.status().failed == []


class Scripted:
    """A ``ChatClient`` answering with given texts (the protocol, not a mock of cubemem)."""

    name = "scripted"

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def complete(self, messages, *, schema=None) -> Completion:
        return Completion(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])


ANSWERS = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda facts: json.dumps({"facts": facts}),
        st.lists(
            st.fixed_dictionaries(
                {"text": st.text(max_size=60)},
                optional={
                    "source_ids": st.lists(st.sampled_from(["t1", "t2", "t3", "t9", "m1", ""])),
                    "time": st.sampled_from(["2024-02-30", "2024-05-01", "yesterday", None]),
                    "confidence": st.floats(allow_nan=True),
                    "kind": st.text(max_size=10),
                },
            ),
            max_size=4,
        ),
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=ANSWERS, second=ANSWERS)
def test_whatever_the_model_answers_no_turn_is_lost(cube, first, second):
    cube.maintenance.extractor = LLMExtractor(Scripted(first, second))
    session = f"s{time.monotonic_ns()}"
    # extraction may fail on garbage: the turns must be stored either way
    with contextlib.suppress(FollowUpError, ExtractionError):
        cube.add_messages(TURNS, session=session, scope={"user": "ana"})
    turns = cube.list({"session": session, "status": ["active"]}, limit=100)
    assert sorted(t.content for t in turns if t.provenance.source == "message") == sorted(
        t["text"] for t in TURNS
    )
    message_ids = {"m1", "m2", "m3"}
    for fact in (t for t in turns if t.provenance.source == "extract"):
        assert fact.provenance.source_ids and set(fact.provenance.source_ids) <= message_ids
        assert fact.scope.user == "ana" and fact.scope.session == session
        versions = [v.version for v in cube.history(fact.id)]
        assert versions == list(range(1, len(versions) + 1))  # append-only


def test_requests_per_minute_and_concurrency_are_kept(server):
    server(ok(FACTS, delay=0.2))
    paced = chat(server, requests_per_minute=240)  # one start every 0.25 s
    started = time.monotonic()
    for _ in range(3):
        paced.complete([{"role": "user", "content": "hi"}])
    assert time.monotonic() - started >= 0.5
    single = chat(server, concurrency=1)
    threads = [
        threading.Thread(target=single.complete, args=([{"role": "user", "content": "x"}],))
        for _ in range(3)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started >= 0.6  # one at a time, 0.2 s each


def test_budgets_batch_turns_and_refuse_what_does_not_fit(cube):
    turns = [{"speaker": "Ana", "text": f"fact number {i} about her week", "id": f"m{i}"}
             for i in range(50)]  # fmt: skip
    client = Scripted(json.dumps({"facts": []}))
    extractor = LLMExtractor(client, window=20, max_calls_per_add=2)
    cube.maintenance.extractor = extractor
    cube.add_messages(turns, session="s1", scope={"user": "ana"})
    assert extractor.usage["calls"] == 2 and extractor.usage["turns"] == 50
    tight = LLMExtractor(client, max_calls_per_add=2, max_prompt_tokens=60)
    cube.maintenance.extractor = tight
    with pytest.raises(FollowUpError, match="max_calls_per_add"):
        cube.add_messages(turns, session="s2", scope={"user": "ana"})
    assert tight.usage["calls"] == 0 and cube.count({"session": "s2"}) == 50


def test_token_usage_shows_in_scheduler_status(cube, server):
    cube.maintenance.extractor = LLMExtractor(chat(server), decide=False)
    cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
    usage = cube.scheduler.status().extraction[cube.name]
    assert usage["calls"] == 1 and usage["prompt_tokens"] == 100 and usage["facts"] == 2
