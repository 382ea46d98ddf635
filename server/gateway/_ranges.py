"""HTTP byte ranges on attachments (RFC 9110 §14), for tablets resuming a photo over a bad link.

CouchDB 3 answers ranges itself; pouchdb-server ignores them. When the backend sends the whole
attachment we cut the requested slice out, so only those bytes cross the tablet's link.
"""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["ByteRange", "RangeNotSatisfiable", "parse_range", "slice_stream"]

_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Inclusive."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, total: int) -> str:
        return f"bytes {self.start}-{self.end}/{total}"


class RangeNotSatisfiable(ValueError):
    """The range lies outside the representation."""


def parse_range(header: str | None, total: int) -> ByteRange | None:
    """One satisfiable range, None for "send everything" (absent, malformed or multi-range).

    Raises ``RangeNotSatisfiable`` for a well-formed range that starts past the end.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, total - suffix), total - 1)
    start = int(first)
    end = min(int(last), total - 1) if last else total - 1
    if start >= total:
        raise RangeNotSatisfiable(header)
    if end < start:
        return None
    return ByteRange(start, end)


async def slice_stream(chunks: AsyncIterator[bytes], wanted: ByteRange) -> AsyncIterator[bytes]:
    """The bytes ``wanted.start..wanted.end`` of a stream of chunks."""
    offset = 0
    async for chunk in chunks:
        chunk_end = offset + len(chunk)
        if chunk_end > wanted.start and offset <= wanted.end:
            lo = max(0, wanted.start - offset)
            hi = min(len(chunk), wanted.end - offset + 1)
            yield chunk[lo:hi]
        offset = chunk_end
        if offset > wanted.end:
            return
