"""Field documents as tablets write them, for tests and benchmarks."""

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from field_schema.demo_data import make_png
from geo import wgs84_to_gcj02

__all__ = ["ZR01_POINT", "ZR02_POINT", "hazard", "photo_attachment"]

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
