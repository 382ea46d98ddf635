"""Grids and micro-grids as loaded from GeoJSON (the map the worker and gateway place points on)."""

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = ["GridArea"]


class GridArea(SQLModel, table=True):
    __tablename__ = "grid_areas"

    code: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=16)
    parent: str | None = Field(default=None, max_length=32, index=True)
    name_zh: str
    name_en: str
    geometry: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    """GeoJSON geometry in WGS-84."""
    updated_at: datetime = utc_field()
