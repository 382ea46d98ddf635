"""A pass-through HTTP proxy on the gateway's own stack (uvicorn + httpx), with no logic at all.

``bench.replication`` runs the same push and pull through it: the cost of one Python hop between
PouchDB and the CouchDB server, which any gateway written on this stack pays before doing anything
(auth, scoping, validation, receipts). It forwards method, path, query, headers and body as they
are, and streams the answer back untouched (compressed bodies stay compressed).
"""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.support.served import ThreadedServer, read_body

__all__ = ["pass_through"]

_HOP_BY_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}
_STREAM_CHUNK = 64 * 1024

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self.client is not None
        body = await read_body(receive)
        path = scope["raw_path"].decode()
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        request = self.client.build_request(scope["method"], path, headers=headers, content=body)
        response = await self.client.send(request, stream=True)
        try:
            answer = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": answer})
            async for chunk in response.aiter_raw(_STREAM_CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(base_url=self.upstream, timeout=120)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def pass_through(upstream: str) -> ThreadedServer:
    """The proxy to ``upstream``, to start; served as the test stack serves the gateway."""
    return ThreadedServer(_Proxy(upstream), name="pass-through proxy")
