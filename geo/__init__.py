"""Grids, micro-grids and coordinate datums. Pure functions, no I/O beyond reading a grid file."""

from geo._datum import (
    Datum,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    gcj02_to_wgs84_many,
    in_china,
    to_wgs84,
    to_wgs84_many,
    wgs84_to_gcj02,
)
from geo._grids import Area, AreaKind, Assignment, AssignmentStatus, GridLoadError, load_areas
from geo._index import STATUS_ORDER, BatchAssignment, GridIndex
from geo._metric import LocalProjection, geodesic_distance_m

__all__ = [
    "STATUS_ORDER",
    "Area",
    "AreaKind",
    "Assignment",
    "AssignmentStatus",
    "BatchAssignment",
    "Datum",
    "GridIndex",
    "GridLoadError",
    "LocalProjection",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "gcj02_to_wgs84_many",
    "geodesic_distance_m",
    "in_china",
    "load_areas",
    "to_wgs84",
    "to_wgs84_many",
    "wgs84_to_gcj02",
]
