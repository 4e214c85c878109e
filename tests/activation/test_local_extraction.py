"""Extraction with a local transformers model end to end, on a tiny model built from a config:
no quality claim — it proves the wiring (chat template, generation, token counts) and the
fallback: its output is not JSON, the repair round fails too, and the turns stay stored."""

from __future__ import annotations

import pytest

from cubemem import FollowUpError, InvalidInputError
from cubemem.extract import LLMExtractor
from cubemem.llm import TransformersChat


def test_a_local_model_runs_and_its_failure_keeps_the_turns(model, tokenizer, cube):
    chat = TransformersChat(model, tokenizer, max_new_tokens=12)
    answer = chat.complete([{"role": "user", "content": "Where does Ana live?"}])
    assert answer.prompt_tokens > 0 and 0 < answer.completion_tokens <= 12
    extractor = LLMExtractor(chat)
    cube.maintenance.extractor = extractor
    with pytest.raises(FollowUpError) as raised:
        cube.add_messages(
            [{"speaker": "Ana", "text": "I live in Porto", "id": "m1"}],
            session="s1",
            scope={"user": "ana"},
        )
    assert "ExtractionError" in str(raised.value)
    assert extractor.usage["calls"] == 2 and extractor.usage["repairs"] == 1
    assert [m.content for m in cube.list({"user": "ana"})] == ["I live in Porto"]


def test_a_tokenizer_without_a_chat_template_is_refused(model, tokenizer):
    template, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        with pytest.raises(InvalidInputError, match="chat template"):
            TransformersChat(model, tokenizer)
    finally:
        tokenizer.chat_template = template


def test_a_transformers_pipeline_is_taken_as_it_is(model, tokenizer):
    """``as_chat`` takes the text-generation pipeline a user already built (its model and
    tokenizer, run in this process)."""
    from transformers import pipeline

    from cubemem.chat import as_chat

    chat = as_chat(pipeline("text-generation", model=model, tokenizer=tokenizer))
    assert isinstance(chat, TransformersChat) and chat.model is model
    chat.max_new_tokens = 4
    assert chat.complete([{"role": "user", "content": "hi"}]).completion_tokens <= 4
