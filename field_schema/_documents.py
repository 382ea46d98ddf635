"""The documents tablets write, one pydantic model per type and version (the single source of truth).

Every field document shares the envelope: who wrote it, on which device, when the device thought it
was (``observed_at``, never trusted for ordering) and where (``location``, with its datum).
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from field_schema._taxonomy import Severity
from geo import Datum

__all__ = [
    "CaseStatusDoc",
    "Envelope",
    "HazardV1",
    "HazardV2",
    "Location",
    "LocationSource",
]

LocationSource = Literal["gnss", "network", "manual", "unknown"]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class _Document(BaseModel):
    # Newer app versions may add fields; CouchDB's own fields (_id, _rev, ...) ride along.
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class Location(BaseModel):
    model_config = ConfigDict(extra="allow")

    lat: Latitude
    lon: Longitude
    datum: Datum
    accuracy_m: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
    source: LocationSource = "unknown"


class Envelope(_Document):
    type: str
    schema_version: int
    author: ShortText
    device_id: ShortText
    observed_at: datetime
    location: Location
    grid_hint: str | None = None
    micro_grid_hint: str | None = None


class HazardV2(Envelope):
    """A hazard finding as the current tablet app writes it."""

    type: Literal["hazard"]
    schema_version: Literal[2]
    concern_code: Annotated[str, Field(min_length=1, max_length=16)]
    severity: Severity | None = None
    note: Annotated[str, Field(max_length=4000)] = ""


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
