"""ASGI apps served by uvicorn in a background thread on a free port (the app under test, the
benchmarks' pass-through proxy), and the request-body reader of our small ASGI proxies."""

import threading
import time
from typing import Any

import uvicorn

from server.cli import KEEP_ALIVE_S
from server.devcouch import free_port

__all__ = ["ThreadedServer", "read_body"]


class ThreadedServer:
    def __init__(self, app: Any, port: int | None = None, *, name: str = "app server") -> None:
        self.port = port or free_port()
        self.name = name
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


async def read_body(receive: Any) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)
