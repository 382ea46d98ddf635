"""Field documents as tablets write them, for tests and benchmarks."""

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from field_schema.demo_data import make_png
from geo import wgs84_to_gcj02

__all__ = [
    "ZR01_POINT",
    "ZR02_POINT",
    "follow_up",
    "hazard",
    "installation",
    "missing_person",
    "photo_attachment",
    "visit",
]

# Well inside the demo grids ZR01 (真光) and ZR02 (清涧), WGS-84 (lon, lat).
ZR01_POINT = (121.3905, 31.2600)
ZR02_POINT = (121.4030, 31.2600)


def photo_attachment(seed: int = 1, side: int = 32) -> dict[str, Any]:
    return {"content_type": "image/png", "data": base64.b64encode(make_png(side, side, seed)).decode()}


def hazard(
    author: str,
    *,
    point: tuple[float, float] = ZR01_POINT,
    concern: str = "04-01",
    note: str = "楼道飞线充电 / flying-lead charging",
    doc_id: str | None = None,
    photo: bool = True,
    datum: str = "gcj02",
    accuracy_m: float = 8.0,
    **extra: Any,
) -> dict[str, Any]:
    lon, lat = wgs84_to_gcj02(*point) if datum == "gcj02" else point
    doc: dict[str, Any] = {
        "_id": doc_id or f"hazard-{uuid.uuid4().hex}",
        "type": "hazard",
        "schema_version": 2,
        "author": author,
        "device_id": f"tablet-of-{author}",
        "observed_at": datetime.now(UTC).isoformat(),
        "location": {"lat": lat, "lon": lon, "datum": datum, "accuracy_m": accuracy_m, "source": "gnss"},
        "concern_code": concern,
        "note": note,
        **extra,
    }
    if photo:
        doc["_attachments"] = {"photo-1.png": photo_attachment()}
    return doc


def _envelope(
    kind: str, author: str, point: tuple[float, float] | None, doc_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": doc_id or f"{kind}-{uuid.uuid4().hex}",
        "type": kind,
        "schema_version": 1,
        "author": author,
        "device_id": f"tablet-of-{author}",
        "observed_at": datetime.now(UTC).isoformat(),
    }
    if point is not None:
        lon, lat = wgs84_to_gcj02(*point)
        doc["location"] = {"lat": lat, "lon": lon, "datum": "gcj02", "accuracy_m": 8.0, "source": "gnss"}
    doc.update(extra)
    return doc


def follow_up(
    author: str, *, grid_hint: str | None = "ZR01", satisfied: bool = True, **extra: Any
) -> dict[str, Any]:
    """A resident follow-up by phone: no location, only a grid hint."""
    fields: dict[str, Any] = {"case_id": "case-1", "satisfied": satisfied, "comment": "", **extra}
    if grid_hint is not None:
        fields["grid_hint"] = grid_hint
    return _envelope("follow_up", author, None, **fields)


def installation(
    author: str,
    *,
    point: tuple[float, float] = ZR01_POINT,
    state: str = "installed",
    doc_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An e-bike charging facility of the 2026 campaign (``kind`` is a field here, so it is set
    after the envelope, whose own ``kind`` is the document type)."""
    doc = _envelope(
        "installation", author, point, doc_id, state=state, campaign_id="ebike-2026", address="兰溪路88号"
    )
    return {**doc, "kind": "charging_facility", **extra}


def missing_person(author: str, *, point: tuple[float, float] = ZR01_POINT, **extra: Any) -> dict[str, Any]:
    return _envelope(
        "missing_person",
        author,
        point,
        last_seen_at=datetime.now(UTC).isoformat(),
        description="男，约80岁，灰色外套 / man, about 80, grey coat",
        **extra,
    )


def visit(author: str, *, point: tuple[float, float] = ZR01_POINT, **extra: Any) -> dict[str, Any]:
    return _envelope(
        "visit", author, point, subject="shop", address="兰溪路88号", outcome="advice_given", **extra
    )
