"""The LangChain chat model and the LlamaIndex LLM generate with the cube's activation memory."""

from __future__ import annotations

import pytest
import torch

from cubemem import MemCube
from cubemem_activation import ActivationMemory
from cubemem_langchain import MemCubeLocalChatModel
from cubemem_llamaindex import MemCubeLocalLLM


def reference(model, tokenizer, system: str, question: str, max_new_tokens: int) -> str:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    out = model.generate(
        input_ids=torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)


@pytest.fixture
def memory(tmp_path, embedder, model, tokenizer):
    with MemCube.create(tmp_path / "cube", embedder=embedder) as cube:
        cube.add(
            ["Ana lives in Porto", "Ana's cat is Miso"], scope={"agent": "bot", "session": "s"}
        )
        memory = ActivationMemory(cube, model, tokenizer)
        yield memory
        memory.close()


def test_langchain_chat_model_generates_with_memory(memory, model, tokenizer):
    chat = MemCubeLocalChatModel(memory=memory, agent="bot", session="s", max_new_tokens=12)
    reply = chat.invoke("Where does Ana live?")
    block = memory.block("bot", "s")
    assert reply.content == reference(model, tokenizer, block.text, "Where does Ana live?", 12)
    streamed = "".join(c.content for c in chat.stream("Where does Ana live?"))
    assert streamed == reply.content
    assert memory.builds == 1  # both calls reused one block


async def test_langchain_chat_model_async(memory):
    chat = MemCubeLocalChatModel(memory=memory, agent="bot", session="s", max_new_tokens=8)
    assert (await chat.ainvoke("hi")).content == chat.invoke("hi").content


def test_llamaindex_llm_generates_with_memory(memory, model, tokenizer):
    llm = MemCubeLocalLLM(memory=memory, agent="bot", session="s", max_new_tokens=12)
    completion = llm.complete("Where does Ana live?")
    block = memory.block("bot", "s")
    assert completion.text == reference(model, tokenizer, block.text, "Where does Ana live?", 12)
    pieces = list(llm.stream_complete("Where does Ana live?"))
    assert pieces[-1].text == completion.text
    from llama_index.core.base.llms.types import ChatMessage

    chat = llm.chat([ChatMessage(role="user", content="Where does Ana live?")])
    assert chat.message.content == completion.text
