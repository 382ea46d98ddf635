"""The common envelope, the hazard finding (both versions) and the server's case status document.

Every field document shares the envelope: who wrote it, on which device, when the device thought it
was (``observed_at``, never trusted for ordering), where (``location``, with its datum) and,
optionally, which grid / micro-grid the tablet believed it was in. Photos travel as CouchDB
attachments (``_attachments``) and are checked by the gateway, not by these models.
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from field_schema._errors import rule_error
from field_schema._labels import labelled
from field_schema._taxonomy import Severity
from geo import Datum

__all__ = [
    "DATUM_LABELS",
    "AreaCode",
    "CaseStatusDoc",
    "DocId",
    "Envelope",
    "HazardV1",
    "HazardV2",
    "Latitude",
    "Location",
    "LocationSource",
    "LongText",
    "Longitude",
    "Note",
    "ShortText",
]

LocationSource = Literal["gnss", "network", "manual", "unknown"]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=2000)]
Note = Annotated[str, Field(max_length=4000), labelled("备注", "Note")]
DocId = Annotated[str, Field(min_length=1, max_length=200)]
AreaCode = Annotated[str, Field(min_length=1, max_length=32)]

DATUM_LABELS = {
    "wgs84": ("WGS-84（卫星定位）", "WGS-84 (GNSS)"),
    "gcj02": ("GCJ-02（高德、腾讯地图）", "GCJ-02 (Amap, Tencent)"),
    "bd09": ("BD-09（百度地图）", "BD-09 (Baidu)"),
}
_SOURCE_LABELS = {
    "gnss": ("卫星定位", "GNSS"),
    "network": ("网络定位", "Network"),
    "manual": ("手动选点", "Picked on the map"),
    "unknown": ("未知", "Unknown"),
}
_SEVERITY_LABELS = {
    "low": ("低", "Low"),
    "medium": ("中", "Medium"),
    "high": ("高", "High"),
    "urgent": ("紧急", "Urgent"),
}


class _Document(BaseModel):
    # Newer app versions may add fields; CouchDB's own fields (_id, _rev, ...) ride along.
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class Location(BaseModel):
    model_config = ConfigDict(extra="allow")

    lat: Annotated[Latitude, labelled("纬度", "Latitude")]
    lon: Annotated[Longitude, labelled("经度", "Longitude")]
    datum: Annotated[Datum, labelled("坐标系", "Datum", choices=DATUM_LABELS)]
    accuracy_m: Annotated[
        float, Field(ge=0, le=100_000, allow_inf_nan=False), labelled("定位精度（米）", "Accuracy (m)")
    ]
    source: Annotated[LocationSource, labelled("定位来源", "Source", choices=_SOURCE_LABELS)] = "unknown"


class Envelope(_Document):
    """What every field document carries. ``location`` is required by the types that happen at a
    place; the others (e.g. a follow-up by phone) need a location or at least a grid hint."""

    type: str
    schema_version: int
    author: Annotated[ShortText, labelled("记录人", "Author")]
    device_id: Annotated[ShortText, labelled("设备编号", "Device id")]
    observed_at: Annotated[datetime, labelled("记录时间（设备时钟）", "Observed at (device clock)")]
    location: Annotated[Location | None, labelled("位置", "Location")] = None
    grid_hint: Annotated[AreaCode | None, labelled("所在网格（设备判断）", "Grid (as the tablet saw it)")] = (
        None
    )
    micro_grid_hint: Annotated[
        AreaCode | None, labelled("所在微网格（设备判断）", "Micro-grid (as the tablet saw it)")
    ] = None

    @model_validator(mode="after")
    def _placeable(self) -> "Envelope":
        # The gateway files each document in a grid database: it needs a point or a grid.
        if self.location is None and self.grid_hint is None and self.micro_grid_hint is None:
            raise rule_error(
                "location",
                "需要位置，或至少填写所在网格 grid_hint",
                "a location, or at least a grid_hint, is required",
            )
        return self


class HazardV2(Envelope):
    """A hazard finding as the current tablet app writes it (photos as attachments)."""

    type: Literal["hazard"]
    schema_version: Literal[2]
    location: Annotated[Location, labelled("位置", "Location")]
    concern_code: Annotated[str, Field(min_length=1, max_length=16), labelled("问题类型代码", "Concern code")]
    severity: Annotated[
        Severity | None,
        labelled(
            "严重程度（空则取分类默认值）", "Severity (default from the concern)", choices=_SEVERITY_LABELS
        ),
    ] = None
    note: Annotated[str, Field(max_length=4000), labelled("问题描述", "Description")] = ""


class HazardV1(_Document):
    """A hazard finding as tablets of the first app release still send it (flat GCJ-02 coordinates)."""

    type: Literal["hazard"]
    schema_version: Literal[1]
    author: ShortText
    device_id: ShortText
    observed_at: datetime
    lat: Latitude
    lng: Longitude
    accuracy: Annotated[float, Field(ge=0, le=100_000)] = 0.0
    concern: Annotated[str, Field(min_length=1, max_length=16)]
    note: Annotated[str, Field(max_length=4000)] = ""


class CaseStatusDoc(_Document):
    """Written only by the worker: what happened to a finding, for the tablet that reported it."""

    type: Literal["case_status"]
    schema_version: Literal[1]
    finding_id: str
    case_id: str
    case_no: str
    state: str
    state_label_zh: str
    state_label_en: str
    grid: str | None
    updated_at: datetime
