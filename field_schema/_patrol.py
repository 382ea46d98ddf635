"""巡查 patrol: a walk through the grid (e.g. a 消防安全三进 fire-safety patrol) with its route
and the places checked, so coordinators can see what was covered."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from field_schema._documents import (
    DATUM_LABELS,
    AreaCode,
    DocId,
    Envelope,
    Latitude,
    Longitude,
    Note,
    ShortText,
)
from field_schema._errors import rule_error
from field_schema._labels import labelled
from geo import Datum

__all__ = [
    "PATROL_KIND_LABELS",
    "PLACE_KIND_LABELS",
    "PLACE_RESULT_LABELS",
    "PatrolKind",
    "PatrolV1",
    "PlaceChecked",
    "PlaceKind",
    "PlaceResult",
    "TrackPoint",
]

MAX_ROUTE_POINTS = 20_000  # a 10-hour walk sampled every 2 s, still well under CouchDB's document limit

PatrolKind = Literal["fire_safety", "two_buildings_one_safety", "routine", "joint"]
PATROL_KIND_LABELS = {
    "fire_safety": ("消防安全三进", "Fire-safety campaign patrol"),
    "two_buildings_one_safety": ("两楼一平安", "Building safety volunteers' patrol"),
    "routine": ("日常巡查", "Routine patrol"),
    "joint": ("联合巡查（公安、消防）", "Joint patrol with police or fire brigade"),
}
PlaceKind = Literal["community", "street_block", "building", "park", "shop", "other"]
PLACE_KIND_LABELS = {
    "community": ("社区、小区", "Residential community"),
    "street_block": ("街面", "Street block"),
    "building": ("楼宇", "Office building"),
    "park": ("园区", "Business park"),
    "shop": ("商铺", "Shop"),
    "other": ("其他", "Other"),
}
PlaceResult = Literal["ok", "issue_found", "not_accessible"]
PLACE_RESULT_LABELS = {
    "ok": ("正常", "OK"),
    "issue_found": ("发现问题", "Issue found"),
    "not_accessible": ("无法进入", "Could not get in"),
}


class TrackPoint(BaseModel):
    model_config = ConfigDict(extra="allow")

    lat: Annotated[Latitude, labelled("纬度", "Latitude")]
    lon: Annotated[Longitude, labelled("经度", "Longitude")]
    at: Annotated[datetime | None, labelled("时间（设备时钟）", "Time (device clock)")] = None
    """Device clock; only orders the points of this one route."""


class PlaceChecked(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    name: Annotated[ShortText, labelled("地点", "Place")]
    kind: Annotated[PlaceKind, labelled("类型", "Kind", choices=PLACE_KIND_LABELS)]
    result: Annotated[PlaceResult, labelled("检查结果", "Result", choices=PLACE_RESULT_LABELS)]
    micro_grid: Annotated[AreaCode | None, labelled("微网格", "Micro-grid")] = None
    finding_ids: Annotated[list[DocId], Field(max_length=50), labelled("隐患记录", "Hazard findings")] = []


class PatrolV1(Envelope):
    """One patrol. ``location`` (optional) is where it started; ``route`` is the GNSS track."""

    type: Literal["patrol"]
    schema_version: Literal[1]
    kind: Annotated[PatrolKind, labelled("巡查类型", "Patrol kind", choices=PATROL_KIND_LABELS)]
    started_at: Annotated[datetime, labelled("开始时间", "Started at")]
    ended_at: Annotated[
        datetime | None, labelled("结束时间（进行中为空）", "Ended at (empty while under way)")
    ] = None
    route_datum: Annotated[Datum, labelled("轨迹坐标系", "Route datum", choices=DATUM_LABELS)] = Datum.GCJ02
    route: Annotated[list[TrackPoint], Field(max_length=MAX_ROUTE_POINTS), labelled("巡查轨迹", "Route")] = []
    places_checked: Annotated[
        list[PlaceChecked], Field(max_length=500), labelled("检查地点", "Places checked")
    ] = []
    joint_departments: Annotated[
        list[str], Field(max_length=10), labelled("联合巡查部门", "Departments patrolling with us")
    ] = []
    note: Note = ""

    @model_validator(mode="after")
    def _ends_after_start(self) -> "PatrolV1":
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise rule_error("ended_at", "结束时间早于开始时间", "ended_at is before started_at")
        return self
