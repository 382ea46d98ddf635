"""The join index searches cells ring by ring; it must pick what comparing every member would."""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from sync._joins import _JoinIndex, _Member

_LAT0 = 31.26


_X_SCALE = 111_320.0 * math.cos(math.radians(_LAT0))


def _plane(lat: float, lon: float) -> tuple[float, float]:
    """The index's local plane, computed the same way (near-ties are decided by rounding)."""
    return lon * _X_SCALE, lat * 110_574.0


def _brute_force(
    members: list[tuple[str, _Member]], concern: str, lat: float, lon: float, at: datetime, radius: float
) -> str | None:
    x, y = _plane(lat, lon)
    best: tuple[float, float, str] | None = None
    for member_concern, m in members:
        mx, my = _plane(m.lat, m.lon)
        squared = (mx - x) ** 2 + (my - y) ** 2
        gap = at.timestamp() - m.received_at.timestamp()
        if member_concern != concern or squared > radius * radius or not 0 <= gap <= 72 * 3600:
            continue
        key = (squared, m.received_at.timestamp(), m.finding_id)
        if best is None or key < best:
            best = key
    return best[2] if best else None


@pytest.mark.parametrize(
    ("radius", "spread_m"), [(500.0, 2000.0), (500.0, 300.0), (80.0, 400.0), (20.0, 150.0)]
)
def test_ring_search_finds_what_a_full_comparison_finds(radius: float, spread_m: float) -> None:
    rng = random.Random(int(radius + spread_m))
    index = _JoinIndex(radius={"c": radius, "other": radius}, window={"c": 72.0, "other": 72.0}, lat0=_LAT0)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    members: list[tuple[str, _Member]] = []

    def point() -> tuple[float, float]:
        # Clustered on a few spots, some points repeated exactly (ties on distance).
        spot = rng.randrange(4)
        lat = 31.26 + spot * 0.001 + rng.uniform(0, spread_m) / 110_574
        lon = 121.39 + rng.uniform(0, spread_m) / 95_000
        return round(lat, 5), round(lon, 5)

    for k in range(400):
        lat, lon = point()
        concern = "c" if k % 5 else "other"
        received = now - timedelta(hours=rng.choice([0, 1, 1, 5, 80]))  # 80 h: outside the window
        member = _Member(f"f-{k:04d}", f"case-{k % 37}", "vol", lat, lon, received)
        index.add("ZR01", concern, member)
        members.append((concern, member))
    found = 0
    for _ in range(300):
        lat, lon = point()
        evidence = index.match("ZR01", "c", lat, lon, now)
        expected = _brute_force(members, "c", lat, lon, now, radius)
        assert (evidence.matched_finding if evidence else None) == expected
        found += evidence is not None
    assert found > 0
    assert found < 300 or radius >= 80.0  # wide radii may match every probe
    assert index.match("ZR02", "c", 31.26, 121.39, now) is None  # another grid's members never match
