"""The chat model a user already has, as the ``ChatClient`` extraction, update decisions,
query expansion and summaries ask: ``as_chat(model)``.

Accepted, without importing any framework here until one is passed:

- a LangChain chat model (``BaseChatModel``: ``ChatOpenAI``, ``ChatOllama``, a fake one):
  structured output through ``with_structured_output(schema)`` (tool calling or JSON schema,
  as the model implements it) where the model supports it, plain text otherwise;
- a LlamaIndex ``LLM``: a forced tool call carrying the schema when it is a function-calling
  model, ``chat`` otherwise;
- a transformers text-generation ``pipeline`` (its model and tokenizer, run in this process);
- anything with ``name`` and ``complete(messages, schema=)`` (``OpenAIChat``,
  ``TransformersChat``, your own).

Without structured output the prompt still asks for JSON and the extractor's tolerant
parsing and repair round do the rest. A model that fails (an outage, a refusal, a bug in it)
is ``BackendUnavailableError``; the follow-up that asked is retried and dead-lettered with
the reason, and the turns it was reading stay stored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from cubemem.errors import BackendUnavailableError, InvalidInputError
from cubemem.llm import ChatClient, Completion, Message, TransformersChat

__all__ = ["LangChainChat", "LlamaIndexChat", "as_chat"]


def _bases(obj: Any) -> set[str]:
    """``module.Class`` of every class ``obj`` is an instance of."""
    return {f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__}


def _describe(obj: Any) -> str:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(obj).__name__


def as_chat(model: Any) -> ChatClient:
    """``model`` as a ``ChatClient``; ``InvalidInputError`` says what is accepted."""
    bases = _bases(model)
    if "langchain_core.language_models.base.BaseLanguageModel" in bases:
        return LangChainChat(model)
    if "llama_index.core.base.llms.base.BaseLLM" in bases:
        return LlamaIndexChat(model)
    if "transformers.pipelines.base.Pipeline" in bases:
        return TransformersChat(model.model, model.tokenizer)
    if callable(getattr(model, "complete", None)) and isinstance(getattr(model, "name", None), str):
        return model
    raise InvalidInputError(
        f"cannot use {type(model).__name__} as a chat model: pass a LangChain chat model, a "
        "LlamaIndex LLM, a transformers text-generation pipeline, cubemem.llm.OpenAIChat(...) "
        "for an OpenAI-compatible endpoint, or an object with name and "
        "complete(messages, schema=None) -> cubemem.llm.Completion"
    )


class LangChainChat:
    """A LangChain chat model behind ``ChatClient``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.structured: bool | None = None
        """Whether ``with_structured_output`` works for this model (None: not tried yet)."""
        self._runnables: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"langchain:{_describe(self.model)}"

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
        if schema is not None and self.structured is not False:
            runnable = self._structured(schema)
            if runnable is not None:
                try:
                    out = runnable.invoke(prompt)
                except NotImplementedError:
                    self.structured = False
                except Exception as exc:
                    raise BackendUnavailableError(f"{self.name} failed: {exc}") from exc
                else:
                    self.structured = True
                    raw, parsed = out.get("raw"), out.get("parsed")
                    if hasattr(parsed, "model_dump"):
                        parsed = parsed.model_dump()
                    text = json.dumps(parsed) if isinstance(parsed, dict) else _text(raw)
                    return Completion(text, *_langchain_tokens(raw))
        try:
            reply = self.model.invoke(prompt)
        except Exception as exc:
            raise BackendUnavailableError(f"{self.name} failed: {exc}") from exc
        return Completion(_text(reply), *_langchain_tokens(reply))

    def _structured(self, schema: dict[str, Any]) -> Any:
        title = str(schema.get("title", "answer"))
        with self._lock:
            if title not in self._runnables:
                try:
                    self._runnables[title] = self.model.with_structured_output(
                        schema, include_raw=True
                    )
                except (NotImplementedError, ValueError, TypeError):
                    self.structured = False  # no tool calling, no JSON mode: plain text
                    return None
            return self._runnables[title]

    def __repr__(self) -> str:
        return f"LangChainChat({self.name!r})"


def _text(message: Any) -> str:
    if message is None:
        return ""
    text = getattr(message, "text", None)
    if isinstance(text, str):  # langchain-core 1.x: a property (a str that is also callable)
        return str(text)
    if callable(text):  # langchain-core before 1.0: a method
        text = text()
    if isinstance(text, str):
        return text
    content = getattr(message, "content", message)
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _langchain_tokens(message: Any) -> tuple[int, int]:
    usage = getattr(message, "usage_metadata", None) or {}
    return int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0)


class LlamaIndexChat:
    """A LlamaIndex ``LLM`` behind ``ChatClient``."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    @property
    def name(self) -> str:
        metadata = getattr(self.llm, "metadata", None)
        model = getattr(metadata, "model_name", None)
        return f"llamaindex:{model if model and model != 'unknown' else type(self.llm).__name__}"

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        from llama_index.core.base.llms.types import ChatMessage

        history = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        try:
            calling = getattr(self.llm.metadata, "is_function_calling_model", False)
            if schema is not None and calling:
                tool = _schema_tool(schema)
                response = self.llm.chat_with_tools(
                    [tool], chat_history=history, tool_required=True
                )
                calls = self.llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
                if calls:
                    return Completion(json.dumps(calls[0].tool_kwargs), *_llama_tokens(response))
            else:
                response = self.llm.chat(history)
        except Exception as exc:
            raise BackendUnavailableError(f"{self.name} failed: {exc}") from exc
        return Completion(response.message.content or "", *_llama_tokens(response))

    def __repr__(self) -> str:
        return f"LlamaIndexChat({self.name!r})"


def _schema_tool(schema: dict[str, Any]) -> Any:
    """A LlamaIndex tool whose parameters are ``schema`` (the answer is its arguments)."""
    from llama_index.core.tools import FunctionTool, ToolMetadata

    class _Metadata(ToolMetadata):
        def get_parameters_dict(self) -> dict[str, Any]:
            keep = ("type", "properties", "required", "definitions", "$defs")
            return {k: v for k, v in schema.items() if k in keep}

    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(schema.get("title", "")))
    metadata = _Metadata(
        name=name or "answer",
        description=str(schema.get("description") or "Give the answer as these arguments."),
        fn_schema=None,
    )
    return FunctionTool(fn=lambda **kwargs: kwargs, metadata=metadata)


def _llama_tokens(response: Any) -> tuple[int, int]:
    extra = getattr(response, "additional_kwargs", None) or {}
    raw = getattr(response, "raw", None)
    usage = (raw.get("usage") if isinstance(raw, dict) else getattr(raw, "usage", None)) or {}
    if not isinstance(usage, dict):
        usage = {k: getattr(usage, k, 0) for k in ("prompt_tokens", "completion_tokens")}
    prompt = extra.get("prompt_tokens", usage.get("prompt_tokens", 0))
    completion = extra.get("completion_tokens", usage.get("completion_tokens", 0))
    return int(prompt or 0), int(completion or 0)
