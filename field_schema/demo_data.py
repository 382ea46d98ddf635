"""Deterministic demo documents (by seed) placed inside the demo grids, with real PNG photos."""

import base64
import random
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely

from field_schema._taxonomy import Taxonomy
from geo import Area, AreaKind, wgs84_to_gcj02

__all__ = ["demo_hazards", "make_png"]


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


def _point_in(area: Area, rng: random.Random) -> tuple[float, float]:
    minx, miny, maxx, maxy = area.geometry.bounds
    while True:
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shapely.contains_xy(area.geometry, lon, lat):
            return lon, lat


def demo_hazards(
    areas: Sequence[Area],
    taxonomy: Taxonomy,
    authors_by_grid: Mapping[str, Sequence[str]],
    *,
    count: int,
    seed: int = 1,
    photo_every: int = 3,
    photo_side: int = 48,
) -> Iterator[dict[str, Any]]:
    """``count`` hazard findings (schema v2, GCJ-02 as Amap reports) spread over the micro-grids."""
    rng = random.Random(seed)
    micro = sorted((a for a in areas if a.kind is AreaKind.MICRO_GRID), key=lambda a: a.code)
    concerns = sorted(taxonomy.concerns)
    start = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    for index in range(count):
        area = micro[index % len(micro)]
        grid = area.parent or area.code
        authors = authors_by_grid.get(grid) or [f"demo-{grid.lower()}"]
        lon, lat = _point_in(area, rng)
        glon, glat = wgs84_to_gcj02(lon, lat)
        concern = concerns[rng.randrange(len(concerns))]
        doc: dict[str, Any] = {
            "_id": f"demo-{seed}-{index:07d}",
            "type": "hazard",
            "schema_version": 2,
            "author": authors[index % len(authors)],
            "device_id": f"tablet-{grid.lower()}-{index % 3}",
            "observed_at": (start + timedelta(minutes=7 * index)).isoformat(),
            "location": {
                "lat": round(glat, 7),
                "lon": round(glon, 7),
                "datum": "gcj02",
                "accuracy_m": round(rng.uniform(3, 25), 1),
                "source": "gnss",
            },
            "grid_hint": grid,
            "micro_grid_hint": area.code,
            "concern_code": concern,
            "note": f"{taxonomy.concerns[concern].name_zh}（演示数据 #{index}）",
        }
        if photo_every and index % photo_every == 0:
            png = make_png(photo_side, photo_side, seed * 1_000_003 + index)
            doc["_attachments"] = {
                "photo-1.png": {"content_type": "image/png", "data": base64.b64encode(png).decode()}
            }
        yield doc
