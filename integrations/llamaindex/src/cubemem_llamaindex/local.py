"""``MemCubeLocalLLM``: a local Hugging Face model with the cube's activation memory, as a
LlamaIndex ``CustomLLM``. Needs the ``local`` extra (``cubemem-llamaindex[local]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback


class MemCubeLocalLLM(CustomLLM):
    """``complete``/``chat``/``stream_complete`` over ``cubemem_activation.ActivationMemory``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any = Field(description="A cubemem_activation.ActivationMemory.")
    agent: str | None = None
    session: str | None = None
    max_new_tokens: int = 256
    context_window: int = 4096

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            model_name="cubemem-local",
        )

    def _run(self, messages: Sequence[dict[str, str]], **kwargs: Any) -> str:
        kwargs.setdefault("max_new_tokens", self.max_new_tokens)
        kwargs.setdefault("do_sample", False)
        return self.memory.generate(messages, agent=self.agent, session=self.session, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._run([{"role": "user", "content": prompt}], **kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        kwargs.setdefault("max_new_tokens", self.max_new_tokens)
        kwargs.setdefault("do_sample", False)
        text = ""
        for piece in self.memory.stream(
            [{"role": "user", "content": prompt}], agent=self.agent, session=self.session, **kwargs
        ):
            text += piece
            yield CompletionResponse(text=text, delta=piece)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        turns = [{"role": m.role.value, "content": m.content or ""} for m in messages]
        return ChatResponse(
            message=ChatMessage(role="assistant", content=self._run(turns, **kwargs))
        )
