"""An HTTP proxy in front of the real CouchDB that lets a test act at one exact request.

Every request goes through to CouchDB unchanged, except the first one ``match`` picks (every one
with ``once=False``): then
``on_match`` runs — after CouchDB has answered it (``forward_first``: the write landed) or
instead of sending it (it never reaches CouchDB) — and the client gets ``status`` (503 unless
told) instead of the answer. With ``status=None`` the client gets CouchDB's own answer, and a
request not forwarded first is sent once ``on_match`` is done (a test changes the store just
before the request lands). A test kills a worker process there, to stop it between two steps of its own code
without touching that code.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from server.devcouch import free_port
from tests.support.served import read_body

__all__ = ["CouchTap", "merge_write"]

Match = Callable[[str, str, bytes], bool]
_TAPPED = b'{"error":"tapped","reason":"stopped by the test"}'
_HOP_HEADERS = frozenset({"host", "content-length", "accept-encoding", "connection", "transfer-encoding"})
_DROPPED_ANSWER_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection"})


def merge_write(doc_id: str | None = None) -> Match:
    """A soft merge written by the worker: ``_bulk_docs`` with ``new_edits: false`` and a
    ``_revisions`` history (of ``doc_id`` when given)."""

    def match(method: str, path: str, body: bytes) -> bool:
        if method != "POST" or not path.endswith("/_bulk_docs"):
            return False
        payload = json.loads(body or b"{}")
        docs = payload.get("docs", [])
        return payload.get("new_edits") is False and any(
            "_revisions" in d and (doc_id is None or d.get("_id") == doc_id) for d in docs
        )

    return match


async def _nothing() -> None:
    return None


@dataclass
class CouchTap:
    target: str
    match: Match
    on_match: Callable[[], Awaitable[None]] = _nothing
    """What to do at the picked request besides answering ``status`` (a test kills a process)."""
    forward_first: bool = True
    once: bool = True
    status: int | None = 503
    port: int = field(default_factory=free_port)
    hits: int = 0
    _server: uvicorn.Server | None = None
    _task: "asyncio.Task[None] | None" = None
    _client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "CouchTap":
        self._client = httpx.AsyncClient(base_url=self.target, timeout=60)
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            interface="asgi3",
            # Workers park longpolls here that CouchDB holds open: do not wait for them at stop.
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(200):
            if self._server.started:
                return self
            await asyncio.sleep(0.025)
        raise RuntimeError("couch tap did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, timeout=15)
        if self._client is not None:
            await self._client.aclose()

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http" and self._client is not None
        body = await read_body(receive)
        path = scope["raw_path"].decode()
        query = scope["query_string"].decode()
        picked = (self.hits == 0 or not self.once) and self.match(scope["method"], path, body)
        if picked:
            self.hits += 1
            if not self.forward_first:
                await self.on_match()
                if self.status is not None:
                    await self._answer(send, self.status, [], _TAPPED)
                    return
        headers = [
            (k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in _HOP_HEADERS
        ]
        answer = await self._client.request(
            scope["method"], path + (f"?{query}" if query else ""), headers=headers, content=body
        )
        if picked and self.forward_first:
            await self.on_match()
            if self.status is not None:
                await self._answer(send, self.status, [], _TAPPED)
                return
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in _DROPPED_ANSWER_HEADERS]
        await self._answer(send, answer.status_code, kept, answer.content)

    @staticmethod
    async def _answer(send: Any, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        raw = [(k.encode(), v.encode()) for k, v in headers if k.lower() != "content-type"]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "application/json")
        raw += [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
