"""Demo documents of every type, deterministic by seed, placed inside the demo micro-grids.

Coordinates are GCJ-02, as the Amap SDK on the tablets reports them; about one hazard in ten comes
from an old tablet (schema v1). Photos are real PNGs. The same seed and counts always give the same
documents, so the demo, the tests and the benchmarks can rely on them.
"""

import base64
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import shapely

from field_schema._demo_png import make_png
from field_schema._taxonomy import Taxonomy
from geo import Area, AreaKind, wgs84_to_gcj02

__all__ = ["DEMO_MIX", "DEMO_TYPES", "DemoDocument", "demo_documents", "mix_counts"]

DEMO_TYPES = ("hazard", "visit", "installation", "patrol", "follow_up", "missing_person")
DEMO_MIX: Mapping[str, float] = {
    "hazard": 0.40,
    "visit": 0.25,
    "installation": 0.10,
    "patrol": 0.08,
    "follow_up": 0.12,
    "missing_person": 0.05,
}
_START = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
_LEGACY_HAZARD_SHARE = 0.1  # old tablets still in the field
# Illustrative street names around Zhenru, for addresses.
_ROADS = ("真北路", "铜川路", "兰溪路", "真光路", "曹杨路", "大渡河路", "真华路", "西乡路")
_SHOPS = ("生鲜店", "便利店", "面馆", "五金店", "理发店", "药店", "早餐店", "水果店")


class DemoDocument(NamedTuple):
    grid: str
    """The grid database the document belongs in."""
    doc: dict[str, Any]


@dataclass
class _Context:
    rng: random.Random
    seed: int
    micro: list[Area]
    taxonomy: Taxonomy
    authors_by_grid: Mapping[str, Sequence[str]]
    photo_every: int
    photo_side: int

    def author(self, grid: str, index: int) -> str:
        authors = self.authors_by_grid.get(grid) or [f"demo-{grid.lower()}"]
        return authors[index % len(authors)]

    def point(self, area: Area) -> tuple[float, float]:
        """A WGS-84 point inside ``area``."""
        minx, miny, maxx, maxy = area.geometry.bounds
        while True:
            lon, lat = self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy)
            if shapely.contains_xy(area.geometry, lon, lat):
                return lon, lat

    def location(self, area: Area) -> dict[str, Any]:
        glon, glat = wgs84_to_gcj02(*self.point(area))
        return {
            "lat": round(glat, 7),
            "lon": round(glon, 7),
            "datum": "gcj02",
            "accuracy_m": round(self.rng.uniform(3, 25), 1),
            "source": "gnss",
        }

    def address(self) -> str:
        return f"{self.rng.choice(_ROADS)}{self.rng.randrange(1, 1500)}号"

    def photos(self, index: int, *, always: bool = False) -> dict[str, Any]:
        if not always and not (self.photo_every and index % self.photo_every == 0):
            return {}
        png = make_png(self.photo_side, self.photo_side, self.seed * 1_000_003 + index)
        return {
            "_attachments": {
                "photo-1.png": {"content_type": "image/png", "data": base64.b64encode(png).decode()}
            }
        }

    def envelope(
        self, kind: str, version: int, index: int, area: Area, *, located: bool = True
    ) -> dict[str, Any]:
        grid = area.parent or area.code
        doc: dict[str, Any] = {
            "_id": f"demo-{self.seed}-{kind}-{index:07d}",
            "type": kind,
            "schema_version": version,
            "author": self.author(grid, index),
            "device_id": f"tablet-{grid.lower()}-{index % 3}",
            "observed_at": (_START + timedelta(minutes=7 * index)).isoformat(),
            "grid_hint": grid,
            "micro_grid_hint": area.code,
        }
        if located:
            doc["location"] = self.location(area)
        return doc


def _hazard(ctx: _Context, index: int, area: Area) -> dict[str, Any]:
    concerns = sorted(c.code for c in ctx.taxonomy.active_concerns())
    code = concerns[ctx.rng.randrange(len(concerns))]
    note = f"{ctx.taxonomy.concerns[code].name_zh}（演示数据 #{index}）"
    if ctx.rng.random() < _LEGACY_HAZARD_SHARE:
        # An old tablet: flat GCJ-02 coordinates, no envelope location, no hints.
        modern = ctx.envelope("hazard", 1, index, area)
        location = modern["location"]
        return {
            **{k: modern[k] for k in ("_id", "type", "schema_version", "author", "device_id", "observed_at")},
            "lat": location["lat"],
            "lng": location["lon"],
            "accuracy": location["accuracy_m"],
            "concern": code,
            "note": note,
            **ctx.photos(index),
        }
    return {**ctx.envelope("hazard", 2, index, area), "concern_code": code, "note": note, **ctx.photos(index)}


def _visit(ctx: _Context, index: int, area: Area) -> dict[str, Any]:
    subject = ctx.rng.choice(("household", "household", "shop", "unit", "public_place"))
    outcome = ctx.rng.choice(("no_issue", "no_issue", "advice_given", "issue_found", "not_home", "refused"))
    follow_up = outcome == "issue_found" and ctx.rng.random() < 0.5
    address = ctx.address() + (ctx.rng.choice(_SHOPS) if subject == "shop" else "")
    return {
        **ctx.envelope("visit", 1, index, area),
        "subject": subject,
        "address": address,
        "outcome": outcome,
        "follow_up_needed": follow_up,
        "follow_up_note": "一周后复查整改情况" if follow_up else "",
        "note": "消防安全宣传资料已发放" if outcome == "advice_given" else "",
    }


def _installation(ctx: _Context, index: int, area: Area) -> dict[str, Any]:
    kind = ctx.rng.choice(("charging_facility", "charging_facility", "micro_fire_cabinet", "other"))
    state = ctx.rng.choice(("planned", "installed", "installed", "checked", "faulty"))
    doc = {
        **ctx.envelope("installation", 1, index, area),
        "kind": kind,
        "state": state,
        "campaign_id": {"charging_facility": "ZR-2026-CHG", "micro_fire_cabinet": "ZR-2026-MFC"}.get(
            kind, "ZR-2026-EQP"
        ),
        "address": ctx.address(),
        "asset_code": f"ZR-{index:06d}",
    }
    if kind == "charging_facility":
        doc["capacity"] = ctx.rng.choice((10, 12, 20, 24))
    if kind == "other":
        doc["kind_other"] = ctx.rng.choice(("应急照明灯", "灭火毯", "应急物资箱"))
    if state == "faulty":
        doc["fault_note"] = ctx.rng.choice(("充电口损坏", "柜门无法打开", "灭火器压力不足"))
    if state in {"installed", "checked", "faulty"}:
        doc.update(ctx.photos(index, always=True))
    return doc


def _patrol(ctx: _Context, index: int, area: Area) -> dict[str, Any]:
    envelope = ctx.envelope("patrol", 1, index, area)
    started = _START + timedelta(minutes=7 * index)
    steps = ctx.rng.randrange(20, 120)
    route = []
    for step in range(steps):
        lon, lat = ctx.point(area)
        glon, glat = wgs84_to_gcj02(lon, lat)
        route.append(
            {
                "lat": round(glat, 7),
                "lon": round(glon, 7),
                "at": (started + timedelta(seconds=30 * step)).isoformat(),
            }
        )
    places = [
        {
            "name": ctx.address(),
            "kind": ctx.rng.choice(("community", "street_block", "building", "park", "shop")),
            "result": ctx.rng.choice(("ok", "ok", "ok", "issue_found", "not_accessible")),
            "micro_grid": area.code,
        }
        for _ in range(ctx.rng.randrange(3, 9))
    ]
    kind = ctx.rng.choice(("fire_safety", "two_buildings_one_safety", "routine", "joint"))
    return {
        **envelope,
        "location": {**envelope["location"], "lat": route[0]["lat"], "lon": route[0]["lon"]},
        "kind": kind,
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(seconds=30 * steps)).isoformat(),
        "route_datum": "gcj02",
        "route": route,
        "places_checked": places,
        "joint_departments": ["police", "fire"] if kind == "joint" else [],
    }


def _follow_up(ctx: _Context, index: int, area: Area) -> dict[str, Any]:
    satisfied = ctx.rng.random() < 0.85
    return {
        **ctx.envelope("follow_up", 1, index, area, located=False),
        "case_id": f"demo-case-{ctx.seed}-{ctx.rng.randrange(10**6):06d}",
        "satisfied": satisfied,
        "comment": "" if satisfied else ctx.rng.choice(("问题反复出现", "整改不彻底", "处理太慢")),
        "method": ctx.rng.choice(("phone", "phone", "visit", "online")),
    }


def _missing_person(ctx: _Context, index: int, area: Area) -> dict[str, Any]:
    age = ctx.rng.randrange(70, 92)
    clothes = ctx.rng.choice(("灰色外套", "蓝色棉衣", "黑色夹克"))
    return {
        **ctx.envelope("missing_person", 1, index, area),
        "last_seen_at": (_START + timedelta(minutes=7 * index - 40)).isoformat(),
        "description": f"约{age}岁，身穿{clothes}，说话口音较重（演示数据）",
        "age": age,
        "sex": ctx.rng.choice(("female", "male")),
        "conditions": "阿尔茨海默病" if ctx.rng.random() < 0.6 else "",
        "status": "open",
        **ctx.photos(index, always=True),
    }


_MAKERS = {
    "hazard": _hazard,
    "visit": _visit,
    "installation": _installation,
    "patrol": _patrol,
    "follow_up": _follow_up,
    "missing_person": _missing_person,
}


def mix_counts(total: int, mix: Mapping[str, float] = DEMO_MIX) -> dict[str, int]:
    """Split ``total`` documents over types by weight (largest remainder, so they add up exactly)."""
    weight = sum(mix.values())
    exact = {kind: total * share / weight for kind, share in mix.items()}
    counts = {kind: math.floor(value) for kind, value in exact.items()}
    for kind in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[: total - sum(counts.values())]:
        counts[kind] += 1
    return counts


def demo_documents(
    areas: Sequence[Area],
    taxonomy: Taxonomy,
    authors_by_grid: Mapping[str, Sequence[str]],
    *,
    counts: Mapping[str, int],
    seed: int = 1,
    photo_every: int = 3,
    photo_side: int = 48,
) -> Iterator[DemoDocument]:
    """``counts[type]`` documents of each type, interleaved, spread over the micro-grids in turn."""
    unknown = set(counts) - set(_MAKERS)
    if unknown:
        raise ValueError(f"no demo generator for {sorted(unknown)}")
    micro = sorted((a for a in areas if a.kind is AreaKind.MICRO_GRID), key=lambda a: a.code)
    if not micro:
        raise ValueError("the demo generator needs micro-grids")
    rng = random.Random(seed)
    ctx = _Context(rng, seed, micro, taxonomy, authors_by_grid, photo_every, photo_side)
    schedule = [kind for kind in DEMO_TYPES for _ in range(counts.get(kind, 0))]
    rng.shuffle(schedule)
    made = dict.fromkeys(DEMO_TYPES, 0)
    for kind in schedule:
        index = made[kind]
        made[kind] += 1
        area = micro[index % len(micro)]
        yield DemoDocument(area.parent or area.code, _MAKERS[kind](ctx, index, area))
