"""A MemoryOS on a ``cubemem serve`` server, with the surface of the local classes.

```python
with RemoteMemoryOS("http://127.0.0.1:8765", api_key=key) as memory:
    cube = memory.open_cube("team")
    cube.add("Ana prefers tea")
    cube.search("what does Ana drink?")
```

``RemoteCube`` has the methods of ``MemCube`` the adapters and agents use (add, add_messages,
search, get, update, delete, restore, history, list, iter, count, put, lookup, refresh,
namespaces) plus review (quarantined, approve, reject, audit), each with an async twin
(``aadd``, ``asearch``, ...) on ``httpx.AsyncClient``. Errors come back as the same
``cubemem.errors`` types (401 is ``AuthenticationError``).

Retries (``tenacity``): a request that never reached the server (connect errors) is always
retried; one whose answer was lost (timeouts, dropped connections, 502/503/504, 429 after its
``Retry-After``) only when repeating it is harmless — reads, and writes carrying an
idempotency key. Every ``add``/``add_messages`` carries one (a fresh UUID unless given), so a
retried write never stores twice.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import TypeAdapter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cubemem import errors
from cubemem.access import Agent, AuditEntry, Grant
from cubemem.manifest import Manifest
from cubemem.model import Filters, MemoryInput, MemoryItem, Message, Scope, SearchResult

DEFAULT_TIMEOUT_S = 60.0
_WAIT_BATCH = 1000
_ITEMS = TypeAdapter(list[MemoryItem])
_RESULTS = TypeAdapter(list[SearchResult])


@dataclass
class _Call:
    """One HTTP request and how to read its answer: sent by the sync or the async client."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    safe: bool = True
    """Repeating it is harmless (a read, or a write with an idempotency key)."""
    parse: Callable[[Any], Any] = lambda data: data


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class _Transport:
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
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
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

    def _policy(self, call: _Call) -> dict[str, Any]:
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

    def send(self, call: _Call) -> Any:
        try:
            for attempt in Retrying(**self._policy(call)):
                with attempt:
                    response = self.client.request(
                        call.method,
                        call.path,
                        json=call.json,
                        params=call.params,
                        headers=call.headers,
                    )
                    return call.parse(_read(response))
        except (httpx.TransportError, _Retryable) as exc:
            raise _unavailable(self.url, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def asend(self, call: _Call) -> Any:
        try:
            async for attempt in AsyncRetrying(**self._policy(call)):
                with attempt:
                    response = await self.aclient.request(
                        call.method,
                        call.path,
                        json=call.json,
                        params=call.params,
                        headers=call.headers,
                    )
                    return call.parse(_read(response))
        except (httpx.TransportError, _Retryable) as exc:
            raise _unavailable(self.url, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover


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


def _scope(scope: Any) -> Any:
    if scope is None:
        return None
    if isinstance(scope, Scope):
        return scope.model_dump(exclude_none=True)
    return {k: v for k, v in dict(scope).items() if v is not None}


def _filters(filters: Any) -> Any:
    if isinstance(filters, Filters):
        return filters.model_dump(mode="json", exclude_defaults=True)
    return filters


def _content(content: Any) -> Any:
    if isinstance(content, MemoryInput):
        return content.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    if isinstance(content, list | tuple):
        return [_content(c) for c in content]
    return content


def _message(message: Any) -> Any:
    if isinstance(message, Message):
        return message.model_dump(mode="json", exclude_none=True)
    if isinstance(message, dict):
        parsed = Message.model_validate(message)  # accepts role/name/text/dia_id aliases
        return parsed.model_dump(mode="json", exclude_none=True)
    return message


def _time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class RemoteCube:
    """A cube on a cubemem server, used as the agent whose key the client holds."""

    def __init__(self, transport: _Transport, manifest: Manifest) -> None:
        self._t = transport
        self._manifest = manifest
        self._base = f"/v1/cubes/{manifest.name}"

    @property
    def name(self) -> str:
        return self._manifest.name

    @property
    def id(self) -> str:
        return self._manifest.id

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def __repr__(self) -> str:
        return f"RemoteCube(name={self.name!r}, url={self._t.url!r})"

    # -- request builders (shared by the sync and async methods) --------------------------
    def _add(
        self,
        path: str,
        body: dict[str, Any],
        single: bool,
        wait: bool,
        idempotency_key: str | None,
    ) -> _Call:
        key = idempotency_key or uuid.uuid4().hex

        def parse(data: Any) -> Any:
            if wait:
                items = _ITEMS.validate_python(data["items"])
                return items[0] if single else items
            return data["ids"][0] if single else data["ids"]

        return _Call(
            "POST",
            f"{self._base}/{path}",
            json={**body, "wait": wait},
            headers={"Idempotency-Key": key},
            parse=parse,
        )

    def _add_call(
        self,
        content: Any,
        scope: Any,
        tags: Sequence[str] | None,
        metadata: dict[str, Any] | None,
        wait: bool,
        idempotency_key: str | None,
    ) -> _Call:
        single = isinstance(content, str | MemoryInput | dict)
        body = {
            "content": _content(content if single else list(content)),
            "scope": _scope(scope),
            "tags": None if tags is None else list(tags),
            "metadata": metadata,
        }
        return self._add("memories", body, single, wait, idempotency_key)

    def _messages_call(
        self,
        messages: Sequence[Any],
        session: str | None,
        timestamp: datetime | str | None,
        scope: Any,
        tags: Sequence[str] | None,
        metadata: dict[str, Any] | None,
        wait: bool,
        idempotency_key: str | None,
    ) -> _Call:
        if isinstance(messages, str | dict) or not isinstance(messages, Sequence):
            raise errors.InvalidInputError("messages must be a list of messages")
        body = {
            "messages": [_message(m) for m in messages],
            "session": session,
            "timestamp": _time(timestamp),
            "scope": _scope(scope),
            "tags": None if tags is None else list(tags),
            "metadata": metadata,
        }
        return self._add("messages", body, False, wait, idempotency_key)

    def _search_call(
        self,
        query: str,
        k: int,
        filters: Any,
        min_score: float | None,
        include_superseded: bool,
    ) -> _Call:
        return _Call(
            "POST",
            f"{self._base}/search",
            json={
                "query": query,
                "k": k,
                "filters": _filters(filters),
                "min_score": min_score,
                "include_superseded": include_superseded,
            },
            parse=lambda data: _RESULTS.validate_python(data["results"]),
        )

    def _update_call(
        self,
        id: str,
        content: str | None,
        tags: Sequence[str] | None,
        metadata: dict[str, Any] | None,
        scope: Any,
        expires_at: datetime | None,
        expected_version: int | None,
    ) -> _Call:
        return _Call(
            "PATCH",
            f"{self._base}/memories/{_id(id)}",
            json={
                "content": content,
                "tags": None if tags is None else list(tags),
                "metadata": metadata,
                "scope": _scope(scope),
                "expires_at": _time(expires_at),
                "expected_version": expected_version,
            },
            safe=expected_version is not None,  # a versioned write cannot apply twice
            parse=MemoryItem.model_validate,
        )

    def _delete_call(self, id: str, purge: bool, expected_version: int | None) -> _Call:
        params: dict[str, Any] = {"purge": purge}
        if expected_version is not None:
            params["expected_version"] = expected_version
        return _Call("DELETE", f"{self._base}/memories/{_id(id)}", params=params)

    def _list_call(self, filters: Any, limit: int, offset: int) -> _Call:
        return _Call(
            "POST",
            f"{self._base}/memories/list",
            json={"filters": _filters(filters), "limit": limit, "offset": offset},
            parse=lambda data: _ITEMS.validate_python(data["items"]),
        )

    def _put_call(
        self,
        namespace: Sequence[str],
        key: str,
        content: str,
        value: dict[str, Any] | None,
        scope: Any,
        tags: Sequence[str] | None,
        metadata: dict[str, Any] | None,
        ttl: timedelta | None,
    ) -> _Call:
        if isinstance(namespace, str):
            raise errors.InvalidInputError("namespace must be a tuple of str labels")
        return _Call(
            "PUT",
            f"{self._base}/keys",
            json={
                "namespace": list(namespace),
                "key": key,
                "content": content,
                "value": value,
                "scope": _scope(scope),
                "tags": None if tags is None else list(tags),
                "metadata": metadata,
                "ttl_s": None if ttl is None else ttl.total_seconds(),
            },
            parse=MemoryItem.model_validate,
        )

    def _lookup_call(self, namespace: Sequence[str], key: str) -> _Call:
        def parse(data: Any) -> MemoryItem | None:
            return None if data["item"] is None else MemoryItem.model_validate(data["item"])

        return _Call(
            "POST",
            f"{self._base}/keys/lookup",
            json={"namespace": list(namespace), "key": key},
            parse=parse,
        )

    def _namespaces_call(self, prefix: Sequence[str], filters: Any) -> _Call:
        return _Call(
            "POST",
            f"{self._base}/keys/namespaces",
            json={"prefix": list(prefix), "filters": _filters(filters)},
            parse=lambda data: [tuple(n) for n in data],
        )

    # -- writing --------------------------------------------------------------------------
    def add(
        self,
        content: Any,
        *,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any:
        """``MemCube.add`` on the server; retried safely (an idempotency key is always sent)."""
        return self._t.send(self._add_call(content, scope, tags, metadata, wait, idempotency_key))

    def add_messages(
        self,
        messages: Sequence[Any],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any:
        """``MemCube.add_messages`` on the server."""
        return self._t.send(
            self._messages_call(
                messages, session, timestamp, scope, tags, metadata, wait, idempotency_key
            )
        )

    def update(
        self,
        id: str,
        content: str | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: Any = None,
        expires_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem:
        return self._t.send(
            self._update_call(id, content, tags, metadata, scope, expires_at, expected_version)
        )

    def delete(self, id: str, *, purge: bool = False, expected_version: int | None = None) -> None:
        self._t.send(self._delete_call(id, purge, expected_version))

    def restore(self, id: str, *, expected_version: int | None = None) -> MemoryItem:
        return self._t.send(
            _Call(
                "POST",
                f"{self._base}/memories/{_id(id)}/restore",
                parse=MemoryItem.model_validate,
            )
        )

    def put(
        self,
        namespace: Sequence[str],
        key: str,
        content: str,
        *,
        value: dict[str, Any] | None = None,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: timedelta | None = None,
    ) -> MemoryItem:
        return self._t.send(
            self._put_call(namespace, key, content, value, scope, tags, metadata, ttl)
        )

    def refresh(self, ids: Sequence[str]) -> builtins.list[MemoryItem]:
        return self._t.send(
            _Call(
                "POST",
                f"{self._base}/keys/refresh",
                json={"ids": list(ids)},
                parse=_ITEMS.validate_python,
            )
        )

    def wait(self, ids: Sequence[str], timeout: float = 30.0) -> bool:
        """Until these queued ids are stored and searchable (False on timeout); asked in
        batches the server accepts."""
        deadline = time.monotonic() + timeout
        wanted = list(ids)
        for start in range(0, len(wanted), _WAIT_BATCH):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            done = self._t.send(
                _Call(
                    "POST",
                    f"{self._base}/wait",
                    json={
                        "ids": wanted[start : start + _WAIT_BATCH],
                        "timeout_s": min(left, 60.0),
                    },
                    parse=lambda data: bool(data["done"]),
                )
            )
            if not done:
                return False
        return True

    # -- reading --------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: Any = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]:
        return self._t.send(self._search_call(query, k, filters, min_score, include_superseded))

    def get(self, id: str) -> MemoryItem:
        return self._t.send(
            _Call("GET", f"{self._base}/memories/{_id(id)}", parse=MemoryItem.model_validate)
        )

    def history(self, id: str) -> builtins.list[MemoryItem]:
        return self._t.send(
            _Call(
                "GET",
                f"{self._base}/memories/{_id(id)}/history",
                parse=_ITEMS.validate_python,
            )
        )

    def list(
        self, filters: Any = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[MemoryItem]:
        """A page (at most the server's page size, 100)."""
        return self._t.send(self._list_call(filters, limit, offset))

    def iter(self, filters: Any = None, *, page_size: int = 100) -> Iterator[MemoryItem]:
        offset = 0
        while True:
            page = self.list(filters, limit=page_size, offset=offset)
            yield from page
            if len(page) < page_size:
                return
            offset += page_size

    def __iter__(self) -> Iterator[MemoryItem]:
        return self.iter()

    def count(self, filters: Any = None) -> int:
        return self._t.send(
            _Call(
                "POST",
                f"{self._base}/count",
                json={"filters": _filters(filters)},
                parse=lambda data: int(data["count"]),
            )
        )

    def __len__(self) -> int:
        return self.count()

    def lookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        return self._t.send(self._lookup_call(namespace, key))

    def namespaces(
        self, prefix: Sequence[str] = (), *, filters: Any = None
    ) -> builtins.list[tuple[str, ...]]:
        return self._t.send(self._namespaces_call(prefix, filters))

    # -- review ---------------------------------------------------------------------------
    def quarantined(self, *, limit: int = 100, offset: int = 0) -> builtins.list[MemoryItem]:
        return self._t.send(
            _Call(
                "GET",
                f"{self._base}/quarantine",
                params={"limit": limit, "offset": offset},
                parse=lambda data: _ITEMS.validate_python(data["items"]),
            )
        )

    def approve(self, id: str) -> MemoryItem:
        return self._t.send(
            _Call(
                "POST",
                f"{self._base}/memories/{_id(id)}/approve",
                safe=False,
                parse=MemoryItem.model_validate,
            )
        )

    def reject(self, id: str) -> MemoryItem:
        return self._t.send(
            _Call(
                "POST",
                f"{self._base}/memories/{_id(id)}/reject",
                safe=False,
                parse=MemoryItem.model_validate,
            )
        )

    def audit(
        self, *, memory_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[AuditEntry]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if memory_id is not None:
            params["memory_id"] = memory_id
        return self._t.send(
            _Call(
                "GET",
                f"{self._base}/audit",
                params=params,
                parse=TypeAdapter(list[AuditEntry]).validate_python,
            )
        )

    # -- async twins ----------------------------------------------------------------------
    async def aadd(
        self,
        content: Any,
        *,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any:
        return await self._t.asend(
            self._add_call(content, scope, tags, metadata, wait, idempotency_key)
        )

    async def aadd_messages(
        self,
        messages: Sequence[Any],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any:
        return await self._t.asend(
            self._messages_call(
                messages, session, timestamp, scope, tags, metadata, wait, idempotency_key
            )
        )

    async def asearch(
        self,
        query: str,
        *,
        k: int = 10,
        filters: Any = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]:
        return await self._t.asend(
            self._search_call(query, k, filters, min_score, include_superseded)
        )

    async def aget(self, id: str) -> MemoryItem:
        return await self._t.asend(
            _Call("GET", f"{self._base}/memories/{_id(id)}", parse=MemoryItem.model_validate)
        )

    async def aupdate(
        self,
        id: str,
        content: str | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: Any = None,
        expires_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem:
        return await self._t.asend(
            self._update_call(id, content, tags, metadata, scope, expires_at, expected_version)
        )

    async def adelete(
        self, id: str, *, purge: bool = False, expected_version: int | None = None
    ) -> None:
        await self._t.asend(self._delete_call(id, purge, expected_version))

    async def alist(
        self, filters: Any = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[MemoryItem]:
        return await self._t.asend(self._list_call(filters, limit, offset))

    async def aput(
        self,
        namespace: Sequence[str],
        key: str,
        content: str,
        *,
        value: dict[str, Any] | None = None,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: timedelta | None = None,
    ) -> MemoryItem:
        return await self._t.asend(
            self._put_call(namespace, key, content, value, scope, tags, metadata, ttl)
        )

    async def alookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        return await self._t.asend(self._lookup_call(namespace, key))

    async def anamespaces(
        self, prefix: Sequence[str] = (), *, filters: Any = None
    ) -> builtins.list[tuple[str, ...]]:
        return await self._t.asend(self._namespaces_call(prefix, filters))


class RemoteMemoryOS:
    """The MemoryOS served at ``url``, as the agent holding ``api_key``."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._t = _Transport(url, api_key, timeout=timeout, retries=retries, transport=transport)

    def __repr__(self) -> str:
        return f"RemoteMemoryOS(url={self._t.url!r})"

    def __enter__(self) -> RemoteMemoryOS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RemoteMemoryOS:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self) -> None:
        self._t.close()

    async def aclose(self) -> None:
        await self._t.aclose()

    def me(self) -> Agent:
        """The agent this client acts as."""
        return self._t.send(_Call("GET", "/v1/me", parse=Agent.model_validate))

    def list_cubes(self) -> builtins.list[str]:
        return self._t.send(
            _Call("GET", "/v1/cubes", parse=lambda data: [c["manifest"]["name"] for c in data])
        )

    def open_cube(self, name: str) -> RemoteCube:
        manifest = self._t.send(
            _Call(
                "GET",
                f"/v1/cubes/{_id(name)}",
                parse=lambda data: Manifest.model_validate(data["manifest"]),
            )
        )
        return RemoteCube(self._t, manifest)

    def create_cube(self, name: str) -> RemoteCube:
        manifest = self._t.send(
            _Call(
                "POST",
                "/v1/cubes",
                json={"name": name},
                safe=False,
                parse=lambda data: Manifest.model_validate(data["manifest"]),
            )
        )
        return RemoteCube(self._t, manifest)

    def search(
        self,
        query: str,
        *,
        cubes: list[str] | None = None,
        k: int = 10,
        filters: Any = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]:
        return self._t.send(
            _Call(
                "POST",
                "/v1/search",
                json={
                    "query": query,
                    "cubes": cubes,
                    "k": k,
                    "filters": _filters(filters),
                    "min_score": min_score,
                    "include_superseded": include_superseded,
                },
                parse=lambda data: _RESULTS.validate_python(data["results"]),
            )
        )

    # -- administration (operators and cube admins) ---------------------------------------
    def create_agent(
        self, name: str, *, trust: float = 0.5, operator: bool = False
    ) -> tuple[Agent, str]:
        """A new agent and its key (operators)."""
        return self._t.send(
            _Call(
                "POST",
                "/v1/agents",
                json={"name": name, "trust": trust, "operator": operator},
                safe=False,
                parse=lambda data: (Agent.model_validate(data["agent"]), data["key"]),
            )
        )

    def grant(self, agent: str, cube: str, right: str, *, scope: Any = None) -> Grant:
        """Give ``agent`` a right on ``cube`` (cube admins)."""
        return self._t.send(
            _Call(
                "PUT",
                f"/v1/cubes/{_id(cube)}/grants/{_id(agent)}",
                json={"right": right, "scope": _scope(scope)},
                parse=Grant.model_validate,
            )
        )

    def revoke(self, agent: str, cube: str) -> None:
        self._t.send(_Call("DELETE", f"/v1/cubes/{_id(cube)}/grants/{_id(agent)}"))

    def set_policy(self, cube: str, *, trust_threshold: float) -> None:
        self._t.send(
            _Call(
                "PUT",
                f"/v1/cubes/{_id(cube)}/policy",
                json={"trust_threshold": trust_threshold},
            )
        )

    async def asearch(
        self,
        query: str,
        *,
        cubes: list[str] | None = None,
        k: int = 10,
        filters: Any = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]:
        return await self._t.asend(
            _Call(
                "POST",
                "/v1/search",
                json={
                    "query": query,
                    "cubes": cubes,
                    "k": k,
                    "filters": _filters(filters),
                    "min_score": min_score,
                    "include_superseded": include_superseded,
                },
                parse=lambda data: _RESULTS.validate_python(data["results"]),
            )
        )


def _id(value: Any) -> str:
    """A path segment: a non-empty str without '/', '?' or '#' (or ``InvalidInputError``)."""
    if not isinstance(value, str) or not value or any(c in value for c in "/?#%\\"):
        raise errors.InvalidInputError(f"expected an id or name, got {value!r}")
    return value
