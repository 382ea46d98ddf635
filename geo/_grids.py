"""Grids and micro-grids, and the assignment of a point to them.

Boundary rule: polygons are closed. A point that lies in (or on the edge of) several grids goes to
the one with the smallest code, so a point on a shared edge always lands in the same grid. When the
point's accuracy circle reaches past the boundary of the grid it landed in, the assignment is
"ambiguous" and lists every grid the circle touches. A point in no grid is "unassigned", never dropped.
"""

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
    "GridIndex",
    "GridLoadError",
    "load_areas",
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
    grid_codes = {a.code for a in areas if a.kind is AreaKind.GRID}
    for area in areas:
        if area.kind is AreaKind.MICRO_GRID and area.parent not in grid_codes:
            problems.append(f"{area.code}: parent grid {area.parent!r} does not exist")
    for kind in AreaKind:
        problems.extend(_overlaps([a for a in areas if a.kind is kind]))
    if problems:
        raise GridLoadError(problems)
    return areas


_OVERLAP_TOLERANCE_M2 = 1.0  # shared edges digitised slightly apart are not overlaps


def _overlaps(areas: Sequence[Area]) -> list[str]:
    if not areas:
        return []
    projection = _projection_for(areas)
    projected = [_project(a.geometry, projection) for a in areas]
    tree = shapely.STRtree(projected)
    left, right = tree.query(projected, predicate="intersects")
    problems = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j and projected[i].intersection(projected[j]).area > _OVERLAP_TOLERANCE_M2:
            problems.append(f"{areas[i].code} overlaps {areas[j].code}")
    return problems


def _projection_for(areas: Iterable[Area]) -> LocalProjection:
    bounds = np.array([a.geometry.bounds for a in areas])
    return LocalProjection(
        lon0=float((bounds[:, 0].min() + bounds[:, 2].max()) / 2),
        lat0=float((bounds[:, 1].min() + bounds[:, 3].max()) / 2),
    )


def _project(geometry: BaseGeometry, projection: LocalProjection) -> BaseGeometry:
    def transform(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = projection.forward(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometry, transform)


class _Layer:
    """One kind of area in projected metres, with its STRtree; areas sorted by code (the tie-break)."""

    def __init__(self, areas: Sequence[Area], projection: LocalProjection) -> None:
        self.areas = sorted(areas, key=lambda a: a.code)
        self.codes = np.array([a.code for a in self.areas], dtype=object)
        self.geometries = [_project(a.geometry, projection) for a in self.areas]
        for geometry in self.geometries:
            shapely.prepare(geometry)
        self.tree = shapely.STRtree(self.geometries) if self.geometries else None

    def locate(self, points: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """Index (into ``areas``) of the lowest-coded area covering each point, or -1."""
        result = np.full(len(points), -1, dtype=np.int64)
        if self.tree is None or len(points) == 0:
            return result
        point_idx, area_idx = self.tree.query(points, predicate="intersects")
        if len(point_idx) == 0:
            return result
        # tree indexes follow the sorted order, so the smallest index is the smallest code
        best = np.full(len(points), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, point_idx, area_idx)
        hit = best != np.iinfo(np.int64).max
        result[hit] = best[hit]
        return result


class GridIndex:
    """Assigns WGS-84 points to grids and micro-grids; vectorised for batches."""

    def __init__(self, areas: Sequence[Area]) -> None:
        if not areas:
            raise ValueError("a grid index needs at least one area")
        self.projection = _projection_for(areas)
        self.grids = _Layer([a for a in areas if a.kind is AreaKind.GRID], self.projection)
        self.micro_grids = _Layer([a for a in areas if a.kind is AreaKind.MICRO_GRID], self.projection)
        self.by_code = {a.code: a for a in areas}

    def assign_many(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Grid and micro-grid codes (``None`` where no area covers the point) for arrays of points."""
        x, y = self.projection.forward(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        points = shapely.points(x, y)
        return self._codes(self.grids, points), self._codes(self.micro_grids, points)

    @staticmethod
    def _codes(layer: _Layer, points: npt.NDArray[Any]) -> npt.NDArray[Any]:
        located = layer.locate(points)
        codes = np.full(len(points), None, dtype=object)
        found = located >= 0
        if found.any():
            codes[found] = layer.codes[located[found]]
        return codes

    def assign(self, lon: float, lat: float, accuracy_m: float = 0.0) -> Assignment:
        """Where one point belongs, taking its reported accuracy into account."""
        grids, micro = self.assign_many([lon], [lat])
        grid = grids[0]
        x, y = self.projection.forward_point(lon, lat)
        candidates: tuple[str, ...] = ()
        if accuracy_m > 0 and self.grids.tree is not None:
            circle = shapely.Point(x, y).buffer(accuracy_m, quad_segs=16)
            touched = self.grids.tree.query(circle, predicate="intersects")
            candidates = tuple(sorted(str(self.grids.codes[i]) for i in touched))
        if grid is None:
            return Assignment(AssignmentStatus.UNASSIGNED, None, None, candidates)
        if len(candidates) > 1:
            return Assignment(AssignmentStatus.AMBIGUOUS, str(grid), _str(micro[0]), candidates)
        return Assignment(AssignmentStatus.ASSIGNED, str(grid), _str(micro[0]))

    def area(self, code: str) -> Area:
        return self.by_code[code]

    def grid_codes(self) -> list[str]:
        return [a.code for a in self.grids.areas]

    def feature_collection(self) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "features": [a.to_feature() for a in [*self.grids.areas, *self.micro_grids.areas]],
        }


def _str(value: object) -> str | None:
    return None if value is None else str(value)
