"""A user-space TCP proxy for broken-link tests: bandwidth cap, delay, and random cuts (seeded).

Used between a tablet and the gateway (or CouchDB) to play a stairwell link: every connection
is cut after a random number of bytes (exponential, mean ``mean_bytes_per_cut``), both ways
counted. Counters tell how many bytes really crossed the link.
"""

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

from server.devcouch import free_port

__all__ = ["LinkStats", "TcpProxy"]

_CHUNK = 16 * 1024


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

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool) -> None:
            try:
                while not cut.is_set():
                    data = await reader.read(_CHUNK)
                    if not data:
                        break
                    if len(data) >= budget[0]:
                        allowed = int(budget[0])
                        if allowed:
                            writer.write(data[:allowed])
                            self._count(allowed, downstream)
                        cut_now()
                        break
                    budget[0] -= len(data)
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    if self.bandwidth_bytes_per_s:
                        await asyncio.sleep(len(data) / self.bandwidth_bytes_per_s)
                    writer.write(data)
                    self._count(len(data), downstream)
                    await writer.drain()
                if not cut.is_set() and writer.can_write_eof():
                    writer.write_eof()
            except (ConnectionError, OSError):
                cut_now()

        try:
            await asyncio.gather(
                pump(client_reader, server_writer, downstream=False),
                pump(server_reader, client_writer, downstream=True),
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
