"""gzip for the gateway's JSON answers, as CouchDB and pouchdb-server do: on a 1 Mbit/s stairwell
link the replication metadata (``_changes``, ``_bulk_get``, ``_revs_diff``) shrinks several times.

Only complete JSON bodies are compressed. Streams are left alone: photos do not compress, ranges
must count identity bytes, and longpoll heartbeats must reach proxies as soon as they are sent.
"""

import asyncio
import gzip
from typing import Any, cast

from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MIN_COMPRESSED_BYTES", "gzip_json"]

MIN_COMPRESSED_BYTES = 1024
_LEVEL = 6
_IN_THREAD_BYTES = 256 * 1024
"""Bigger bodies (``_bulk_get`` with photos) are compressed off the event loop: zlib releases the
GIL, so other tablets are served meanwhile."""


async def _compress(body: bytes) -> bytes:
    if len(body) < _IN_THREAD_BYTES:
        return gzip.compress(body, compresslevel=_LEVEL)
    return await asyncio.to_thread(gzip.compress, body, _LEVEL)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"accept-encoding":
            return b"gzip" in value.lower()
    return False


def gzip_json(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope["type"]) != "http" or not _accepts_gzip(scope):
            await app(scope, receive, send)
            return
        start: dict[str, Any] | None = None

        async def compressing_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = dict(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            pending, start = start, None
            headers: list[tuple[bytes, bytes]] = list(pending.get("headers", []))
            names = {name.lower(): value for name, value in headers}
            body = message.get("body", b"")
            json = names.get(b"content-type", b"").startswith(b"application/json")
            if (
                message.get("more_body")
                or not json
                or b"content-encoding" in names
                or len(body) < MIN_COMPRESSED_BYTES
            ):
                await send(cast("Message", pending))
                await send(message)
                return
            compressed = await _compress(body)
            vary = b", ".join(v for v in (names.get(b"vary"), b"Accept-Encoding") if v)
            headers = [(n, v) for n, v in headers if n.lower() not in {b"content-length", b"vary"}]
            headers += [
                (b"content-encoding", b"gzip"),
                (b"content-length", str(len(compressed)).encode()),
                (b"vary", vary),
            ]
            pending["headers"] = headers
            await send(cast("Message", pending))
            await send({"type": "http.response.body", "body": compressed, "more_body": False})

        await app(scope, receive, compressing_send)

    return middleware
