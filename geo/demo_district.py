"""The demo district: Zhenru's six comprehensive grids with five micro-grids each.

The polygons are ILLUSTRATIVE: a jittered lattice laid over Zhenru's real location in Putuo, not
the official boundaries. ``python -m geo.demo_district`` rewrites ``geo/data/zhenru_demo.geojson``.
"""

import json
import random
from pathlib import Path
from typing import Any

__all__ = ["DEMO_GRIDS", "DEMO_GRID_FILE", "build_demo_district"]

DEMO_GRID_FILE = Path(__file__).parent / "data" / "zhenru_demo.geojson"

# (code, Chinese name, English name, theme) laid out west to east, north row first.
DEMO_GRIDS: tuple[tuple[str, str, str, str], ...] = (
    ("ZR01", "真光", "Zhenguang", "社区治理 community governance"),
    ("ZR02", "清涧", "Qingjian", "平安和谐 safety, harmonious environment"),
    ("ZR03", "星河", "Xinghe", "楼宇资源 building and office resources"),
    ("ZR04", "兰溪", "Lanxi", "公益协商 charity and consultation"),
    ("ZR05", "高陵", "Gaoling", "群团组织 mass organisations"),
    ("ZR06", "真西", "Zhenxi", "智慧服务 smart services"),
)
MICRO_PER_GRID = 5
_WEST, _EAST = 121.385, 121.425
_SOUTH, _NORTH = 31.240, 31.265
_JITTER_DEG = 0.0003  # about 30 m


def build_demo_district(seed: int = 20261125) -> dict[str, Any]:
    rng = random.Random(seed)
    columns = 3 * MICRO_PER_GRID + 1
    step = (_EAST - _WEST) / (columns - 1)
    lat_lines = [_NORTH, (_NORTH + _SOUTH) / 2, _SOUTH]
    lon = [
        [_WEST + i * step + rng.uniform(-_JITTER_DEG, _JITTER_DEG) for i in range(columns)] for _ in lat_lines
    ]
    lat = [[line + rng.uniform(-_JITTER_DEG, _JITTER_DEG) for _ in range(columns)] for line in lat_lines]

    def vertex(row: int, col: int) -> list[float]:
        return [round(lon[row][col], 7), round(lat[row][col], 7)]

    features: list[dict[str, Any]] = []
    for index, (code, name_zh, name_en, theme) in enumerate(DEMO_GRIDS):
        row = index // 3
        first = (index % 3) * MICRO_PER_GRID
        top = [vertex(row, c) for c in range(first, first + MICRO_PER_GRID + 1)]
        bottom = [vertex(row + 1, c) for c in range(first + MICRO_PER_GRID, first - 1, -1)]
        ring = [vertex(row + 1, first), *top, *bottom, vertex(row + 1, first)]
        features.append(_feature(code, f"{name_zh}网格", f"{name_en} grid", "grid", None, ring, theme))
        for m in range(MICRO_PER_GRID):
            col = first + m
            micro_ring = [
                vertex(row + 1, col),
                vertex(row, col),
                vertex(row, col + 1),
                vertex(row + 1, col + 1),
                vertex(row + 1, col),
            ]
            features.append(
                _feature(
                    f"{code}-{m + 1:02d}",
                    f"{name_zh}第{m + 1}微网格",
                    f"{name_en} micro-grid {m + 1}",
                    "micro_grid",
                    code,
                    micro_ring,
                    theme,
                )
            )
    return {
        "type": "FeatureCollection",
        "name": "zhenru_demo",
        "description": (
            "示意边界，非官方网格划分 / Illustrative boundaries around Zhenru subdistrict (Putuo, Shanghai), "
            "not official grid boundaries. WGS-84."
        ),
        "features": features,
    }


def _feature(
    code: str, name_zh: str, name_en: str, kind: str, parent: str | None, ring: list[list[float]], theme: str
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "kind": kind,
            "parent": parent,
            "theme": theme,
        },
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


if __name__ == "__main__":
    DEMO_GRID_FILE.write_text(
        json.dumps(build_demo_district(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"wrote {DEMO_GRID_FILE}")  # noqa: T201
