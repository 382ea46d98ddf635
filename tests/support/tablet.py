"""A simulated tablet: real PouchDB 9 in node (tests/node/tablet.mjs), driven over JSON lines."""

import asyncio
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

from server.devcouch import find_node_modules

__all__ = ["Tablet", "TabletError"]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "tablet.mjs"
_LINE_LIMIT = 256 * 1024 * 1024


class TabletError(RuntimeError):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('name')}: {error.get('message')} (status {error.get('status')})")
        self.error = error
        self.status = error.get("status")


class Tablet:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        remote_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        session: tuple[str, str] | None = None,
    ) -> "Tablet":
        args = [str(SCRIPT), remote_url]
        if username is not None:
            args += ["--user", username, "--password", password or ""]
        if token is not None:
            args += ["--token", token]
        if session is not None:
            args += ["--session", f"{session[0]}:{session[1]}"]
        return await cls._spawn(args)

    @classmethod
    async def open_remote(cls, server_url: str, username: str, password: str) -> "Tablet":
        """A PouchDB client working on remote databases only (tests/node/remote.mjs)."""
        return await cls._spawn([str(NODE_DIR / "remote.mjs"), server_url, username, password])

    @classmethod
    async def _spawn(cls, args: list[str]) -> "Tablet":
        node = shutil.which("node")
        assert node is not None, "node is required"
        node_modules = find_node_modules()
        process = await asyncio.create_subprocess_exec(
            node,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=node_modules.parent,
            limit=_LINE_LIMIT,
            env={"NODE_PATH": str(node_modules), "PATH": str(Path(node).parent)},
        )
        tablet = cls(process)
        ready = await tablet._read()
        if not ready.get("ok"):
            raise TabletError(ready.get("error", {}))
        return tablet

    async def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            raise TabletError({"name": "exited", "message": f"node exited with {await self._process.wait()}"})
        message: dict[str, Any] = json.loads(line)
        return message

    async def call(self, op: str, **params: Any) -> Any:
        async with self._lock:
            assert self._process.stdin is not None
            request_id = next(self._ids)
            self._process.stdin.write((json.dumps({"id": request_id, "op": op, **params}) + "\n").encode())
            await self._process.stdin.drain()
            reply = await self._read()
        assert reply["id"] == request_id
        if not reply["ok"]:
            raise TabletError(reply["error"])
        return reply.get("result")

    async def put(self, doc: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("put", doc=doc)
        return result

    async def get(self, doc_id: str, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("get", doc_id=doc_id, options=options)
        return result

    async def push(self, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("push", options=options)
        return result

    async def pull(self, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("pull", options=options)
        return result

    async def sync(self, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sync", options=options)
        return result

    async def close(self) -> None:
        if self._process.returncode is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(b'{"op": "exit"}\n')
                await self._process.stdin.drain()
                await asyncio.wait_for(self._process.wait(), timeout=5)
            except (TimeoutError, ConnectionError):
                self._process.kill()
                await self._process.wait()

    async def __aenter__(self) -> "Tablet":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
