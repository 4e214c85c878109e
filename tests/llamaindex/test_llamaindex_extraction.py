"""Extraction with the LlamaIndex LLM the user already has (``cubemem.chat``): a forced tool
call carrying the schema on a function-calling LLM (LlamaIndex's ``MockFunctionCallingLLM``),
plain chat and the repair round on one that is not (a ``CustomLLM``), a failing LLM that
loses no turn."""

from __future__ import annotations

import json
from typing import Any

import pytest
from li_helpers import call, scripted_llm
from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from pydantic import Field

from cubemem import FollowUpError, MemCube
from cubemem.chat import LlamaIndexChat, as_chat
from cubemem.errors import BackendUnavailableError
from cubemem.extract import LLMExtractor

TURNS = [
    {"speaker": "user", "text": "I'm vegetarian, and I cook most evenings"},
    {"speaker": "assistant", "text": "Got it."},
]
FACTS = {"facts": [{"text": "The user is vegetarian", "kind": "preference", "source_ids": ["t1"]}]}


class ScriptedLLM(CustomLLM):
    """A text-only LlamaIndex LLM answering with given texts (``complete``; ``chat`` comes
    from ``CustomLLM``)."""

    answers: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        if not self.answers:
            raise RuntimeError("the model is down")
        return CompletionResponse(text=self.answers.pop(0))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def _facts(cube: MemCube) -> list[str]:
    return [
        m.content
        for m in cube.list(filters={"user": "ana"}, limit=50)
        if m.provenance.source == "extract"
    ]


def test_a_function_calling_llm_answers_through_a_forced_tool_call(tmp_path, embedder):
    llm, received = scripted_llm(call("Facts", **FACTS))
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        extractor = LLMExtractor(llm, decide=False)
        assert isinstance(extractor.client, LlamaIndexChat)
        cube.maintenance.extractor = extractor
        cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
        assert _facts(cube) == ["The user is vegetarian"]
        assert len(received) == 1 and extractor.usage["repairs"] == 0


def test_a_text_llm_gets_the_json_prompt_and_a_repair_round(tmp_path, embedder):
    llm = ScriptedLLM(answers=["I think the user likes vegetables.", json.dumps(FACTS)])
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        extractor = LLMExtractor(llm, decide=False)
        cube.maintenance.extractor = extractor
        cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
        assert _facts(cube) == ["The user is vegetarian"]
        assert extractor.usage["repairs"] == 1
        assert "I'm vegetarian" in llm.prompts[0]  # the turns reached the model


def test_a_failing_llm_is_a_typed_error_and_keeps_the_turns(tmp_path, embedder):
    with pytest.raises(BackendUnavailableError, match="the model is down"):
        as_chat(ScriptedLLM()).complete([{"role": "user", "content": "hi"}])
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        cube.maintenance.extractor = LLMExtractor(ScriptedLLM(), decide=False)
        with pytest.raises(FollowUpError):
            cube.add_messages(TURNS, session="s1", scope={"user": "ana"})
        assert cube.count({"user": "ana"}) == 2


def test_memcube_memory_rewrites_the_question_with_the_llm(cube):
    from cubemem_llamaindex import MemCubeMemory

    for text in ["Ana is vegetarian", "Ana's favourite colour is green"]:
        cube.add(text, scope={"user": "ana"})
    question = "What should I cook tonight, given my diet?"
    plain = MemCubeMemory.from_defaults(cube=cube, user_id="ana", min_score=0.1)
    assert "Ana is vegetarian" not in str(plain.get(input=question))
    llm, received = scripted_llm(call("Queries", queries=["diet", "vegetarian or vegan"]))
    expanded = MemCubeMemory.from_defaults(cube=cube, user_id="ana", min_score=0.1, query_model=llm)
    assert "Ana is vegetarian" in str(expanded.get(input=question))
    assert question in str(received[0])  # the LLM was asked about the question
