"""``MemCubeLocalChatModel``: a local Hugging Face model with the cube's activation memory.

Needs the ``local`` extra (``pip install cubemem-langchain[local]``, which brings
``cubemem-activation``). The agent/session's hot memories are injected as a KV block instead of
being re-read as prompt text every turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class MemCubeLocalChatModel(BaseChatModel):
    """A ``BaseChatModel`` over ``cubemem_activation.ActivationMemory``.

    ```python
    memory = ActivationMemory(cube, hf_model, hf_tokenizer)
    chat = MemCubeLocalChatModel(memory=memory, agent="assistant", session="s1")
    chat.invoke("Where does Ana live?")
    ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any
    agent: str | None = None
    session: str | None = None
    max_new_tokens: int = 256
    do_sample: bool = False

    @property
    def _llm_type(self) -> str:
        return "cubemem-local"

    def _messages(self, messages: list[BaseMessage]) -> list[dict[str, str]]:
        return [{"role": ROLES.get(m.type, m.type), "content": m.text} for m in messages]

    def _kwargs(self, stop: list[str] | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
        }
        if stop:
            kwargs["stop_strings"] = stop
            kwargs["tokenizer"] = self.memory.tokenizer
        return kwargs

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = self.memory.generate(
            self._messages(messages), agent=self.agent, session=self.session,
            **self._kwargs(stop), **kwargs,
        )  # fmt: skip
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in self.memory.stream(
            self._messages(messages), agent=self.agent, session=self.session,
            **self._kwargs(stop), **kwargs,
        ):  # fmt: skip
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
