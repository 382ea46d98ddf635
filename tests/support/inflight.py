"""An httpx transport that counts the requests in flight over a real connection pool: sent, and
the answer not yet read to its end nor abandoned. Tests use it to check a client's own bound."""

from collections.abc import AsyncIterator

import httpx

__all__ = ["InFlight"]


class InFlight(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        self._inner = httpx.AsyncHTTPTransport(limits=limits)
        self.now = 0
        self.peak = 0
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.sent += 1
        self.peak = max(self.peak, self.now)
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self.now -= 1
            raise
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, self),
            extensions=response.extensions,
        )

    def _done(self) -> None:
        self.now -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Counted(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream | httpx.SyncByteStream, owner: InFlight) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._owner = owner
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._done()
        await self._stream.aclose()
