"""Response headers every answer of the server gets, set in one place (an ASGI middleware, so
streamed answers pass through untouched).

- No absolute ``Location``: a redirect (Starlette's trailing-slash one included) names a path
  on this server, never the host a request's ``Host`` header claimed.
- The inspector's pages (``/ui``) cannot be framed (``X-Frame-Options: DENY``, CSP
  ``frame-ancestors 'none'``), load nothing from elsewhere (CSP ``default-src 'self'``; the
  one inline stylesheet is allowed by its hash), are never sniffed as another type, send no
  referrer, and are never cached (``Cache-Control: no-store``: they show memories, and the
  agents page shows a new key once).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _style_hash() -> str:
    base = Path(__file__).with_name("templates").joinpath("base.html").read_text()
    style = re.search(r"<style>(.*?)</style>", base, re.S)
    body = style.group(1) if style else ""
    return base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()


PAGE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        (
            "default-src 'self'; img-src 'self' data:; "
            f"style-src 'self' 'sha256-{_style_hash()}'; script-src 'none'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ).encode(),
    ),
]


class Headers:
    """Relative redirects everywhere; the page headers above on ``/ui``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope["path"] == "/ui" or scope["path"].startswith("/ui/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, _relative(v) if k.lower() == b"location" else v)
                    for k, v in message.get("headers", [])
                ]
                if page:
                    given = {k.lower() for k, _ in headers}
                    headers += [(k, v) for k, v in PAGE_HEADERS if k not in given]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def _relative(location: bytes) -> bytes:
    """``location`` without its scheme and host: a path (and query) on this server."""
    parts = urlsplit(location.decode("latin-1"))
    if not parts.scheme and not parts.netloc:
        return location
    path = "/" + parts.path.lstrip("/\\")  # never "//host" nor "/\\host": another host
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")
