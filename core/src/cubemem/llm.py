"""Chat models behind one small protocol, for extraction and update decisions.

``ChatClient.complete(messages, schema=...)`` returns the text and the tokens it cost.
``OpenAIChat`` speaks to any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, LM Studio)
through the official ``openai`` SDK: it asks for JSON-schema output where the server supports
it (and stops asking where it does not), and retries with ``tenacity`` — timeouts, lost
connections, 429 (waiting at least what ``Retry-After`` says) and 5xx — with jittered
exponential backoff. Anything else, or the last failure, is ``BackendUnavailableError``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from cubemem.errors import BackendUnavailableError, InvalidInputError

log = logging.getLogger(__name__)

Message = dict[str, str]
"""``{"role": "system" | "user" | "assistant", "content": str}``."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatClient(Protocol):
    """What extraction needs of a model: one chat completion, JSON when a schema is given."""

    @property
    def name(self) -> str: ...

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion: ...


def openai_client(
    what: str, base_url: str | None, api_key: str | None, *, timeout: float, max_retries: int
) -> Any:
    """An ``openai.OpenAI`` client: ``base_url``/``api_key`` from the arguments or
    ``OPENAI_BASE_URL``/``OPENAI_API_KEY``; a local server (a base URL) needs no key."""
    import openai

    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    key = api_key or os.environ.get("OPENAI_API_KEY") or ("unused" if base_url else None)
    if key is None:
        raise InvalidInputError(
            f"{what} needs an API key: pass api_key=, set OPENAI_API_KEY, or give base_url= "
            "for a local server (Ollama, vLLM, LM Studio) that needs none"
        )
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)


def _retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds a 429/503 asks to wait (``Retry-After`` or ``retry-after-ms``), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:  # an HTTP date: fall back to the backoff
        return None
    return None


class _Pace:
    """At most ``per_minute`` request starts a minute, spread evenly, across threads."""

    def __init__(self, per_minute: float | None) -> None:
        if per_minute is not None and per_minute <= 0:
            raise InvalidInputError(f"requests_per_minute must be positive, got {per_minute}")
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            time.sleep(start - now)


class OpenAIChat:
    """An OpenAI-compatible chat endpoint.

    ``base_url``/``api_key`` default to ``OPENAI_BASE_URL``/``OPENAI_API_KEY``; a local server
    that ignores keys needs none. ``attempts`` tries in all (the SDK's own retries are off, so
    one policy applies), waiting ``backoff_s`` × 2ⁿ with jitter, capped at ``max_wait_s``, and
    never less than a 429's ``Retry-After``.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        attempts: int = 5,
        backoff_s: float = 1.0,
        max_wait_s: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        requests_per_minute: float | None = None,
        concurrency: int | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise InvalidInputError(f"model must be a non-empty str, got {model!r}")
        # one retry policy (tenacity, below), so the SDK's own retries are off
        self.client = openai_client("OpenAIChat", base_url, api_key, timeout=timeout, max_retries=0)
        self.model = model
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.structured = True
        """Cleared when the server refuses ``response_format``; prompts still ask for JSON."""
        self._pace = _Pace(requests_per_minute)
        self._slots = threading.Semaphore(concurrency) if concurrency else None

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def _wait(self, state: RetryCallState) -> float:
        exponent = min(state.attempt_number - 1, 30)
        backoff = self.backoff_s * 2**exponent + random.uniform(0, self.backoff_s)
        outcome = state.outcome
        asked = _retry_after(outcome.exception() if outcome is not None else None)
        return min(self.max_wait_s, max(backoff, asked or 0.0))

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        import openai

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._pace.wait()
                    if self._slots is None:
                        return self._once(messages, schema)
                    with self._slots:
                        return self._once(messages, schema)
        except openai.OpenAIError as exc:
            raise BackendUnavailableError(
                f"chat endpoint {self.client.base_url} ({self.model!r}) failed after "
                f"{retrying.statistics.get('attempt_number', 1)} attempt(s): {exc}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    def _once(self, messages: Sequence[Message], schema: dict[str, Any] | None) -> Completion:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if schema is not None and self.structured:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema},
            }
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.BadRequestError as exc:
            if "response_format" not in kwargs:
                raise
            log.info("%s refused response_format (%s); asking for JSON in the prompt", self, exc)
            self.structured = False
            kwargs.pop("response_format")
            response = self.client.chat.completions.create(**kwargs)
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice is not None else None) or ""
        usage = response.usage
        return Completion(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )

    def __repr__(self) -> str:
        return f"OpenAIChat({self.model!r}, base_url={str(self.client.base_url)!r})"


class TransformersChat:
    """A local Hugging Face causal LM with a chat template (``AutoModelForCausalLM``), run
    greedily in this process — no server, no network. There is no constrained decoding: the
    prompt asks for JSON and the extractor's tolerant parsing and repair round do the rest.

    ```python
    chat = TransformersChat.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct")
    ```
    """

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int = 512) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise InvalidInputError("the tokenizer has no chat template; use an instruct model")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one generation at a time per model

    @classmethod
    def from_pretrained(
        cls, name: str, *, device: str | None = None, max_new_tokens: int = 512
    ) -> TransformersChat:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(name)
            model: Any = AutoModelForCausalLM.from_pretrained(name)
        except Exception as exc:  # OSError, ValueError, hub errors ...
            raise BackendUnavailableError(f"could not load chat model {name!r}: {exc}") from exc
        if device is not None:
            model = model.to(device)
        return cls(model.eval(), tokenizer, max_new_tokens=max_new_tokens)

    @property
    def name(self) -> str:
        return f"transformers:{getattr(self.model.config, '_name_or_path', '') or 'local'}"

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        import torch

        try:
            encoded = self.tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            ids = encoded["input_ids"].to(self.model.device)
            with self._lock, torch.no_grad():
                out = self.model.generate(
                    ids,
                    attention_mask=encoded.get("attention_mask"),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                )
        except (RuntimeError, ValueError) as exc:
            raise BackendUnavailableError(f"local chat model failed: {exc}") from exc
        new = out[0, ids.shape[-1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Completion(text, int(ids.shape[-1]), int(new.shape[-1]))
