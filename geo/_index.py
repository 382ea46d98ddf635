"""Assignment of points to grids and micro-grids, vectorised over batches.

Boundary rule: polygons are closed. A point that lies in (or on the edge of) several grids goes to
the one with the smallest code, so a point on a shared edge always lands in the same grid; its
micro-grid is the smallest-coded micro-grid *of that grid* covering it. When the point's accuracy
circle reaches another grid, the assignment is "ambiguous" and lists every grid the circle touches.
A point in no grid is "unassigned", never dropped.

Work is done in projected metres (``LocalProjection``) and loops over polygons, never over points:
a bounding-box mask, then GEOS's prepared point-in-polygon on coordinate arrays. For ambiguity,
most points are cleared cheaply because they lie inside their grid shrunk by their accuracy; only
points near a boundary get the exact (and slower) distance query.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo._grids import Area, AreaKind, Assignment, AssignmentStatus, project_geometry, projection_for
from geo._metric import LocalProjection

__all__ = ["STATUS_ORDER", "BatchAssignment", "GridIndex"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

STATUS_ORDER: tuple[AssignmentStatus, ...] = (
    AssignmentStatus.ASSIGNED,
    AssignmentStatus.AMBIGUOUS,
    AssignmentStatus.UNASSIGNED,
)
"""``BatchAssignment.status`` holds indexes into this tuple."""
_ASSIGNED, _AMBIGUOUS, _UNASSIGNED = 0, 1, 2

# Accuracy radii are rounded up to a power of this ratio so shrunken grids can be cached and shared.
_BUCKET_RATIO = 1.25
_BUCKET_MIN = -20  # 1.25**-20 ≈ 1 cm; smaller radii round up to it
_BUCKET_MAX = 100  # 1.25**100 m is beyond any district: such a point always gets the exact check
# A negative buffer approximates arcs by chords (0.12 % too generous at 16 segments per quarter):
# shrink by 1 % more so "inside the shrunken grid" always means "farther than the radius from its edge".
_SHRINK_MARGIN = 1.01
_QUAD_SEGS = 16


class _Layer:
    """One kind of area in projected metres; areas sorted by code (the tie-break)."""

    def __init__(self, areas: Sequence[Area], projection: LocalProjection) -> None:
        self.areas = sorted(areas, key=lambda a: a.code)
        self.codes = np.array([a.code for a in self.areas], dtype=object)
        self.geometries = [project_geometry(a.geometry, projection) for a in self.areas]
        for geometry in self.geometries:
            shapely.prepare(geometry)
        self.bounds = np.array([g.bounds for g in self.geometries], dtype=np.float64).reshape(-1, 4)
        self.tree = shapely.STRtree(self.geometries) if self.geometries else None
        self._shrunk: dict[tuple[int, int], BaseGeometry] = {}

    def locate(self, x: FloatArray, y: FloatArray, among: Sequence[int] | None = None) -> IntArray:
        """Index of the lowest-coded area (of ``among``, default all) covering each point, or -1."""
        result = np.full(len(x), -1, dtype=np.int64)
        for i in sorted(range(len(self.areas)) if among is None else among):
            minx, miny, maxx, maxy = self.bounds[i]
            # areas are visited in code order and a point keeps its first hit: lowest code wins
            todo = np.flatnonzero((result < 0) & (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))
            if todo.size:
                hit = shapely.intersects_xy(self.geometries[i], x[todo], y[todo])
                result[todo[hit]] = i
        return result

    def shrunk(self, i: int, bucket: int) -> BaseGeometry:
        """Area ``i`` minus a band a little wider than the bucket's radius along its edge."""
        key = (i, bucket)
        if key not in self._shrunk:
            radius = _BUCKET_RATIO**bucket * _SHRINK_MARGIN + 1e-6
            geometry = self.geometries[i].buffer(-radius, quad_segs=_QUAD_SEGS)
            shapely.prepare(geometry)
            self._shrunk[key] = geometry
        return self._shrunk[key]


@dataclass(frozen=True)
class BatchAssignment:
    """Where each point of a batch belongs. Arrays are aligned with the input points."""

    grid_codes: tuple[str, ...]
    micro_grid_codes: tuple[str, ...]
    grid_index: IntArray
    """Index into ``grid_codes``, -1 when unassigned."""
    micro_grid_index: IntArray
    status: npt.NDArray[np.int8]
    """Index into ``STATUS_ORDER``."""
    candidate_points: IntArray
    """With ``candidate_grids``: (point, grid) pairs the accuracy circle touches, sorted; filled for
    ambiguous and unassigned points only."""
    candidate_grids: IntArray

    def __len__(self) -> int:
        return len(self.grid_index)

    @property
    def grids(self) -> npt.NDArray[Any]:
        """Grid code (``None`` when unassigned) of each point."""
        return np.array([*self.grid_codes, None], dtype=object)[self.grid_index]

    @property
    def micro_grids(self) -> npt.NDArray[Any]:
        return np.array([*self.micro_grid_codes, None], dtype=object)[self.micro_grid_index]

    def counts(self) -> dict[AssignmentStatus, int]:
        tally = np.bincount(self.status, minlength=len(STATUS_ORDER))
        return {status: int(tally[i]) for i, status in enumerate(STATUS_ORDER)}

    def candidates(self, i: int) -> tuple[str, ...]:
        lo, hi = np.searchsorted(self.candidate_points, [i, i + 1])
        return tuple(self.grid_codes[g] for g in self.candidate_grids[lo:hi])

    def __getitem__(self, i: int) -> Assignment:
        status = STATUS_ORDER[int(self.status[i])]
        grid, micro = int(self.grid_index[i]), int(self.micro_grid_index[i])
        return Assignment(
            status=status,
            grid=self.grid_codes[grid] if grid >= 0 else None,
            micro_grid=self.micro_grid_codes[micro] if micro >= 0 else None,
            candidates=() if status is AssignmentStatus.ASSIGNED else self.candidates(i),
        )


class GridIndex:
    """Assigns WGS-84 points to grids and micro-grids; vectorised for batches."""

    def __init__(self, areas: Sequence[Area]) -> None:
        if not areas:
            raise ValueError("a grid index needs at least one area")
        self.projection = projection_for(areas)
        self.grids = _Layer([a for a in areas if a.kind is AreaKind.GRID], self.projection)
        self.micro_grids = _Layer([a for a in areas if a.kind is AreaKind.MICRO_GRID], self.projection)
        self.by_code = {a.code: a for a in areas}
        grid_position = {a.code: i for i, a in enumerate(self.grids.areas)}
        self._children: list[list[int]] = [[] for _ in self.grids.areas]
        self._orphans: list[int] = []  # micro-grids without a loaded parent: searched for every point
        for j, micro in enumerate(self.micro_grids.areas):
            parent = grid_position.get(micro.parent or "")
            (self._orphans if parent is None else self._children[parent]).append(j)

    def assign_batch(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike, accuracy_m: npt.ArrayLike | None = None
    ) -> BatchAssignment:
        """Grid, micro-grid and status of every point (WGS-84 degrees; accuracy radius in metres)."""
        x, y = self.projection.forward(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        accuracy = np.zeros(len(x)) if accuracy_m is None else np.asarray(accuracy_m, dtype=np.float64)
        accuracy = np.broadcast_to(accuracy, x.shape)
        if not np.all(np.isfinite(accuracy) & (accuracy >= 0)):
            raise ValueError("accuracy_m must be finite and non-negative")
        grid = self.grids.locate(x, y)
        micro = self._locate_micro(x, y, grid)
        status = np.where(grid >= 0, _ASSIGNED, _UNASSIGNED).astype(np.int8)
        near = self._near_boundary(x, y, accuracy, grid)
        points, grids = self._touched(x, y, accuracy, near)
        if points.size:
            touched = np.bincount(points, minlength=len(x))
            status[(touched >= 2) & (grid >= 0)] = _AMBIGUOUS
        # candidates are reported for ambiguous and unassigned points only
        keep = status[points] != _ASSIGNED
        return BatchAssignment(
            grid_codes=tuple(str(c) for c in self.grids.codes),
            micro_grid_codes=tuple(str(c) for c in self.micro_grids.codes),
            grid_index=grid,
            micro_grid_index=micro,
            status=status,
            candidate_points=points[keep],
            candidate_grids=grids[keep],
        )

    def _locate_micro(self, x: FloatArray, y: FloatArray, grid: IntArray) -> IntArray:
        micro = np.full(len(x), -1, dtype=np.int64)
        order = np.argsort(grid, kind="stable")
        starts = np.searchsorted(grid[order], np.arange(-1, len(self._children) + 1))
        for g, children in enumerate(self._children):
            members = order[starts[g + 1] : starts[g + 2]]
            if children and members.size:
                micro[members] = self.micro_grids.locate(x[members], y[members], among=children)
        if self._orphans:
            rest = np.flatnonzero(micro < 0)
            found = self.micro_grids.locate(x[rest], y[rest], among=self._orphans)
            micro[rest] = found
        return micro

    def _near_boundary(self, x: FloatArray, y: FloatArray, accuracy: FloatArray, grid: IntArray) -> IntArray:
        """Points whose accuracy circle may reach past their grid's edge (a superset), or that lie
        outside every grid yet within their accuracy of the district's bounding box."""
        candidates = [np.empty(0, dtype=np.int64)]
        inside = np.flatnonzero((grid >= 0) & (accuracy > 0))
        if inside.size:
            bucket = np.ceil(np.log(accuracy[inside]) / math.log(_BUCKET_RATIO))
            bucket = np.clip(bucket, _BUCKET_MIN, _BUCKET_MAX).astype(np.int64)
            key = grid[inside] * (_BUCKET_MAX - _BUCKET_MIN + 1) + (
                bucket - _BUCKET_MIN
            )  # one group per (grid, radius bucket)
            order = np.argsort(key, kind="stable")
            groups = np.split(order, np.flatnonzero(np.diff(key[order])) + 1)
            for group in groups:
                members = inside[group]
                shrunk = self.grids.shrunk(int(grid[members[0]]), int(bucket[group[0]]))
                clear = shapely.contains_xy(shrunk, x[members], y[members])
                candidates.append(members[~clear])
        outside = np.flatnonzero((grid < 0) & (accuracy > 0))
        if outside.size and len(self.grids.bounds):
            minx, miny = self.grids.bounds[:, 0].min(), self.grids.bounds[:, 1].min()
            maxx, maxy = self.grids.bounds[:, 2].max(), self.grids.bounds[:, 3].max()
            a, ox, oy = accuracy[outside], x[outside], y[outside]
            reach = (ox >= minx - a) & (ox <= maxx + a) & (oy >= miny - a) & (oy <= maxy + a)
            candidates.append(outside[reach])
        return np.sort(np.concatenate(candidates))

    def _touched(
        self, x: FloatArray, y: FloatArray, accuracy: FloatArray, near: IntArray
    ) -> tuple[IntArray, IntArray]:
        """(point, grid) pairs, sorted, for every grid within each near point's accuracy (exact)."""
        if near.size == 0 or self.grids.tree is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        points = shapely.points(x[near], y[near])
        local, grids = self.grids.tree.query(points, predicate="dwithin", distance=accuracy[near])
        pairs = np.lexsort((grids, near[local]))
        return near[local][pairs].astype(np.int64), grids[pairs].astype(np.int64)

    def assign_many(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Grid and micro-grid codes (``None`` where no area covers the point) for arrays of points."""
        batch = self.assign_batch(lon, lat)
        return batch.grids, batch.micro_grids

    def assign(self, lon: float, lat: float, accuracy_m: float = 0.0) -> Assignment:
        """Where one point belongs, taking its reported accuracy into account."""
        return self.assign_batch([lon], [lat], [accuracy_m])[0]

    def area(self, code: str) -> Area:
        return self.by_code[code]

    def grid_codes(self) -> list[str]:
        return [a.code for a in self.grids.areas]

    def feature_collection(self) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "features": [a.to_feature() for a in [*self.grids.areas, *self.micro_grids.areas]],
        }
