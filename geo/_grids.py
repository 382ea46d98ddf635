"""Grids and micro-grids as loaded from GeoJSON, validated on load (codes, polygons, overlaps,
parents). Assignment of points to them lives in ``geo._index``."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo._metric import LocalProjection

__all__ = [
    "Area",
    "AreaKind",
    "Assignment",
    "AssignmentStatus",
    "GridLoadError",
    "load_areas",
    "project_geometry",
    "projection_for",
]


class AreaKind(StrEnum):
    GRID = "grid"
    MICRO_GRID = "micro_grid"


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    AMBIGUOUS = "ambiguous"
    UNASSIGNED = "unassigned"


class GridLoadError(ValueError):
    """The grid file is not a valid, non-overlapping set of polygons; ``problems`` name the codes."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Area:
    code: str
    name_zh: str
    name_en: str
    kind: AreaKind
    geometry: BaseGeometry = field(repr=False, compare=False)
    parent: str | None = None

    def to_feature(self) -> dict[str, Any]:
        return {
            "type": "Feature",
            "properties": {
                "code": self.code,
                "name_zh": self.name_zh,
                "name_en": self.name_en,
                "kind": str(self.kind),
                "parent": self.parent,
            },
            "geometry": shapely.geometry.mapping(self.geometry),
        }


@dataclass(frozen=True)
class Assignment:
    status: AssignmentStatus
    grid: str | None
    micro_grid: str | None
    candidates: tuple[str, ...] = ()
    """Every grid the accuracy circle touches (only filled when ambiguous)."""


def load_areas(source: Path | dict[str, Any]) -> list[Area]:
    """Read grids and micro-grids from a GeoJSON FeatureCollection and validate them.

    Raises ``GridLoadError`` naming every invalid polygon, duplicate code, unknown parent and
    overlap between two areas of the same kind.
    """
    data = json.loads(source.read_text(encoding="utf-8")) if isinstance(source, Path) else source
    problems: list[str] = []
    areas: list[Area] = []
    seen: set[str] = set()
    for index, feature in enumerate(data.get("features", [])):
        props = feature.get("properties") or {}
        code = str(props.get("code") or "")
        if not code:
            problems.append(f"feature #{index}: missing code")
            continue
        if code in seen:
            problems.append(f"{code}: duplicate code")
            continue
        seen.add(code)
        try:
            geometry = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{code}: unreadable geometry ({exc})")
            continue
        if geometry.geom_type not in {"Polygon", "MultiPolygon"}:
            problems.append(f"{code}: geometry is {geometry.geom_type}, expected a polygon")
            continue
        if not geometry.is_valid:
            problems.append(f"{code}: invalid polygon ({shapely.is_valid_reason(geometry)})")
            continue
        kind = AreaKind(props.get("kind", "grid"))
        areas.append(
            Area(
                code=code,
                name_zh=str(props.get("name_zh", code)),
                name_en=str(props.get("name_en", code)),
                kind=kind,
                geometry=geometry,
                parent=props.get("parent"),
            )
        )
    grids = {a.code: a for a in areas if a.kind is AreaKind.GRID}
    for area in areas:
        if area.kind is AreaKind.MICRO_GRID and area.parent not in grids:
            problems.append(f"{area.code}: parent grid {area.parent!r} does not exist")
    for kind in AreaKind:
        problems.extend(_overlaps([a for a in areas if a.kind is kind]))
    problems.extend(_outside_parent(areas, grids))
    if problems:
        raise GridLoadError(problems)
    return areas


_OVERLAP_TOLERANCE_M2 = 1.0  # shared edges digitised slightly apart are not overlaps
_OUTSIDE_PARENT_TOLERANCE_M2 = 1.0  # same slack for a micro-grid's edge against its grid's edge


def _overlaps(areas: Sequence[Area]) -> list[str]:
    if not areas:
        return []
    projection = projection_for(areas)
    projected = [project_geometry(a.geometry, projection) for a in areas]
    tree = shapely.STRtree(projected)
    left, right = tree.query(projected, predicate="intersects")
    problems = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j and projected[i].intersection(projected[j]).area > _OVERLAP_TOLERANCE_M2:
            problems.append(f"{areas[i].code} overlaps {areas[j].code}")
    return problems


def _outside_parent(areas: Sequence[Area], grids: dict[str, Area]) -> list[str]:
    """Micro-grids reaching outside their grid ("网格抓总，微格落细": a micro-grid subdivides its grid)."""
    micro = [a for a in areas if a.kind is AreaKind.MICRO_GRID and a.parent in grids]
    if not micro:
        return []
    projection = projection_for(areas)
    problems = []
    for area in micro:
        parent = grids[str(area.parent)]
        outside = project_geometry(area.geometry, projection).difference(
            project_geometry(parent.geometry, projection)
        )
        if outside.area > _OUTSIDE_PARENT_TOLERANCE_M2:
            problems.append(f"{area.code}: lies {outside.area:.0f} m² outside its parent grid {parent.code}")
    return problems


def projection_for(areas: Iterable[Area]) -> LocalProjection:
    bounds = np.array([a.geometry.bounds for a in areas])
    return LocalProjection(
        lon0=float((bounds[:, 0].min() + bounds[:, 2].max()) / 2),
        lat0=float((bounds[:, 1].min() + bounds[:, 3].max()) / 2),
    )


def project_geometry(geometry: BaseGeometry, projection: LocalProjection) -> BaseGeometry:
    def transform(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = projection.forward(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometry, transform)
