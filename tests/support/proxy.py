"""A user-space TCP proxy for broken-link tests: bandwidth cap, latency, and random cuts (seeded).

It plays a stairwell or basement link between a tablet and a server. Each direction of each
connection is a pipe: bytes are read at once, delivered ``delay_s`` later (latency, not added per
chunk), and no faster than ``bandwidth_bytes_per_s`` (shared by every connection in that
direction, as one radio link is). A connection is cut after a random number of bytes (exponential,
mean ``mean_bytes_per_cut``, both directions counted): both sides are reset at once. Counters tell
how many bytes really crossed the link.
"""

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

from server.devcouch import free_port

__all__ = ["LinkStats", "TcpProxy"]

_CHUNK = 16 * 1024
_CUT = "cut"
_EOF = "eof"


@dataclass
class LinkStats:
    connections: int = 0
    cuts: int = 0
    bytes_down: int = 0
    """Server → client."""
    bytes_up: int = 0
    """Client → server."""

    @property
    def bytes_total(self) -> int:
        return self.bytes_down + self.bytes_up


class _Link:
    """One direction of the radio link: a shared clock for serialising bytes at the link's rate."""

    def __init__(self, bytes_per_s: float | None) -> None:
        self.bytes_per_s = bytes_per_s
        self._free_at = 0.0

    def reserve(self, size: int) -> float:
        """When ``size`` bytes queued now have finished crossing (monotonic time)."""
        now = time.monotonic()
        if not self.bytes_per_s:
            return now
        self._free_at = max(self._free_at, now) + size / self.bytes_per_s
        return self._free_at


@dataclass
class TcpProxy:
    target_host: str
    target_port: int
    mean_bytes_per_cut: float | None = None
    bandwidth_bytes_per_s: float | None = None
    delay_s: float = 0.0
    seed: int = 1
    port: int = field(default_factory=free_port)
    stats: LinkStats = field(default_factory=LinkStats)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._down = _Link(self.bandwidth_bytes_per_s)
        self._up = _Link(self.bandwidth_bytes_per_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut_all(self) -> int:
        """Cut every open connection now (a tunnel, a lift door)."""
        pairs = list(self._pairs)
        for client, server in pairs:
            for writer in (client, server):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self.stats.cuts += len(pairs)
        return len(pairs)

    def _budget(self) -> float:
        if not self.mean_bytes_per_cut:
            return float("inf")
        return self._rng.expovariate(1.0 / self.mean_bytes_per_cut)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, server_writer)
        self._pairs.add(pair)
        budget = [self._budget()]
        cut = asyncio.Event()

        def cut_now() -> None:
            # Both directions die at once, as when the radio link drops.
            if not cut.is_set():
                self.stats.cuts += 1
                cut.set()
            for side in pair:
                side.transport.abort()

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool) -> None:
            link = self._down if downstream else self._up
            queue: asyncio.Queue[tuple[float, bytes] | str] = asyncio.Queue()

            async def receive() -> None:
                try:
                    while not cut.is_set():
                        data = await reader.read(_CHUNK)
                        if not data:
                            break
                        if len(data) >= budget[0]:
                            allowed = int(budget[0])
                            budget[0] = 0
                            if allowed:
                                await queue.put((link.reserve(allowed) + self.delay_s, data[:allowed]))
                            await queue.put(_CUT)  # the link drops once these last bytes are through
                            return
                        budget[0] -= len(data)
                        await queue.put((link.reserve(len(data)) + self.delay_s, data))
                except (ConnectionError, OSError):
                    cut_now()
                await queue.put(_EOF)

            async def deliver() -> None:
                try:
                    while True:
                        item = await queue.get()
                        if item == _CUT:
                            cut_now()
                            return
                        if item == _EOF:
                            if not cut.is_set() and writer.can_write_eof():
                                writer.write_eof()
                            return
                        assert isinstance(item, tuple)
                        due, data = item
                        wait = due - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        if cut.is_set():
                            return
                        writer.write(data)
                        self._count(len(data), downstream)
                        await writer.drain()
                except (ConnectionError, OSError):
                    cut_now()

            await asyncio.gather(receive(), deliver())

        try:
            await asyncio.gather(
                pipe(client_reader, server_writer, downstream=False),
                pipe(server_reader, client_writer, downstream=True),
            )
        finally:
            self._pairs.discard(pair)
            for writer in pair:
                if cut.is_set():
                    writer.transport.abort()
                else:
                    with contextlib.suppress(Exception):
                        writer.close()

    def _count(self, size: int, downstream: bool) -> None:
        if downstream:
            self.stats.bytes_down += size
        else:
            self.stats.bytes_up += size
