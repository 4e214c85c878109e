"""The HTTP side of the remote client: one request as a value (``Call``), the sync and async
httpx clients, the retry policy and the mapping of error answers back to ``cubemem.errors``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cubemem import errors
from cubemem.model import Filters, MemoryInput, Message, Scope

DEFAULT_TIMEOUT_S = 60.0


@dataclass
class Call:
    """One HTTP request and how to read its answer: sent by the sync or the async client."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    safe: bool = True
    """Repeating it is harmless (a read, or a write with an idempotency key)."""
    parse: Callable[[Any], Any] = lambda data: data

    @property
    def request(self) -> dict[str, Any]:
        """The arguments of ``httpx.Client.request``."""
        return {
            "method": self.method,
            "url": self.path,
            "json": self.json,
            "params": self.params,
            "headers": self.headers,
        }


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class Transport:
    """The two clients, the retry policy and the error mapping."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float,
        retries: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise errors.InvalidInputError(f"url must be http(s)://host:port, got {url!r}")
        headers = {"Authorization": f"Bearer {_key(api_key)}"} if api_key else {}
        self.url = url.rstrip("/")
        self.retries = retries
        self.client = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._async: httpx.AsyncClient | None = None
        self._async_args = {"base_url": self.url, "headers": headers, "timeout": timeout}

    @property
    def aclient(self) -> httpx.AsyncClient:
        if self._async is None:
            self._async = httpx.AsyncClient(**self._async_args)  # type: ignore[arg-type]
        return self._async

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        self.client.close()
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def _policy(self, call: Call) -> dict[str, Any]:
        def transient(exc: BaseException) -> bool:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
                return True  # never reached the server
            return call.safe and isinstance(exc, httpx.TransportError | _Retryable)

        return {
            "retry": retry_if_exception(transient),
            "stop": stop_after_attempt(self.retries + 1),
            "wait": _wait,
            "reraise": True,
        }

    def send(self, call: Call) -> Any:
        with self._reaching():
            for attempt in Retrying(**self._policy(call)):
                with attempt:
                    return call.parse(_read(self.client.request(**call.request)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def asend(self, call: Call) -> Any:
        with self._reaching():
            async for attempt in AsyncRetrying(**self._policy(call)):
                with attempt:
                    return call.parse(_read(await self.aclient.request(**call.request)))
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """A server that stays unreachable (or busy) after the retries: one typed error."""
        try:
            yield
        except (httpx.TransportError, _Retryable) as exc:
            raise _unavailable(self.url, exc) from exc


def _key(api_key: str) -> str:
    """The key as sent: surrounding whitespace (a pasted newline) dropped; a key no HTTP header
    can carry is refused here, not reported later as a server that could not be reached."""
    if not isinstance(api_key, str):
        raise errors.AuthenticationError(
            f"api_key must be a string (an agent's key, cm_...), got {type(api_key).__name__}"
        )
    key = api_key.strip()
    if not key.isascii() or not key.isprintable() or " " in key:
        raise errors.AuthenticationError(
            "the API key is malformed: cubemem keys are cm_ followed by letters, digits, - and _ "
            "(no spaces, quotes or line breaks inside); copy it whole from where it was printed"
        )
    return key


_backoff = wait_exponential_jitter(multiplier=0.2, max=10)


def _wait(state: RetryCallState) -> float:
    """Exponential backoff with jitter, never sooner than a 429/503's ``Retry-After``."""
    delay = _backoff(state)
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retryable):
        after = exc.response.headers.get("retry-after", "")
        if after.replace(".", "", 1).isdigit():
            delay = max(delay, min(float(after), 60.0))
    return float(delay)


def _read(response: httpx.Response) -> Any:
    if response.status_code in (429, 502, 503, 504):
        raise _Retryable(response)
    if response.status_code == 204:
        return None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success:
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        raise errors.BackendUnavailableError(
            f"the server answered {response.status_code} without a cubemem error: "
            f"{response.text[:300]}"
        )
    kind = getattr(errors, str(error.get("type")), None)
    if response.status_code == 401:
        kind = errors.AuthenticationError
    if not (isinstance(kind, type) and issubclass(kind, errors.CubememError)):
        kind = errors.InvalidInputError if response.status_code < 500 else errors.CubememError
    message = str(error.get("message", ""))
    if kind in (errors.ConflictError, errors.FollowUpError):
        raise kind(message, list(error.get("ids") or []))
    raise kind(message)


def _unavailable(url: str, exc: BaseException) -> errors.BackendUnavailableError:
    what = f"HTTP {exc.response.status_code}" if isinstance(exc, _Retryable) else repr(exc)
    return errors.BackendUnavailableError(
        f"the cubemem server at {url} could not be reached or kept failing ({what}); check "
        "that `cubemem serve` runs there, then retry"
    )


def scope_json(scope: Any) -> Any:
    if scope is None:
        return None
    if isinstance(scope, Scope):
        return scope.model_dump(exclude_none=True)
    return {k: v for k, v in dict(scope).items() if v is not None}


def filters_json(filters: Any) -> Any:
    if isinstance(filters, Filters):
        return filters.model_dump(mode="json", exclude_defaults=True)
    return filters


def content_json(content: Any) -> Any:
    if isinstance(content, MemoryInput):
        return content.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    if isinstance(content, list | tuple):
        return [content_json(c) for c in content]
    return content


def message_json(message: Any) -> Any:
    if isinstance(message, Message):
        return message.model_dump(mode="json", exclude_none=True)
    if isinstance(message, dict):
        parsed = Message.model_validate(message)  # accepts role/name/text/dia_id aliases
        return parsed.model_dump(mode="json", exclude_none=True)
    return message


def time_json(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def segment(value: Any) -> str:
    """A path segment: a non-empty str without '/', '?' or '#' (or ``InvalidInputError``)."""
    if not isinstance(value, str) or not value or any(c in value for c in "/?#%\\"):
        raise errors.InvalidInputError(f"expected an id or name, got {value!r}")
    return value
