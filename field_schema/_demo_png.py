"""Real (tiny) PNG photos for demo documents and benchmarks, without an imaging library."""

import random
import struct
import zlib

__all__ = ["make_png"]


def make_png(width: int, height: int, seed: int, *, noisy: bool = True) -> bytes:
    """A valid RGB PNG. Noise makes its size follow width × height (for photo-sized benchmarks)."""
    rng = random.Random(seed)
    base = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    rows = []
    for _ in range(height):
        if noisy:
            rows.append(b"\x00" + rng.randbytes(width * 3))
        else:
            rows.append(b"\x00" + bytes(base) * width)
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )
