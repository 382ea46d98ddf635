"""Point assignment throughput against the demo grids, vectorised vs a naive loop over polygons.

``python -m bench.geo_assign [--quick]``. One million points (quick: 100,000) spread over the demo
district and a margin around it, each with a GNSS accuracy, go through ``GridIndex.assign_batch``
(grid, micro-grid and assigned/ambiguous/unassigned status). The baseline, run in the same process
on a sample, is what one would write first: for each point, loop over the polygons. Both must
agree on every sampled point. GEOS and numpy run single-threaded here: the figures are one core.
"""

import sys
import time

import numpy as np
import numpy.typing as npt
import shapely

from bench._common import best_of, emit, machine, parse_args
from geo import AssignmentStatus, BatchAssignment, GridIndex, load_areas
from geo.demo_district import DEMO_GRID_FILE

TARGET_POINTS_PER_S = 300_000
FULL, QUICK = 1_000_000, 100_000
BASELINE_FULL, BASELINE_QUICK = 20_000, 3_000


def make_points(index: GridIndex, count: int, seed: int) -> tuple[npt.NDArray[np.float64], ...]:
    """Uniform over the district's bounding box plus 3 % each side, accuracies 3-60 m (log-uniform)."""
    rng = np.random.default_rng(seed)
    bounds = np.array([a.geometry.bounds for a in index.grids.areas])
    west, south = bounds[:, 0].min(), bounds[:, 1].min()
    east, north = bounds[:, 2].max(), bounds[:, 3].max()
    margin_x, margin_y = (east - west) * 0.03, (north - south) * 0.03
    lon = rng.uniform(west - margin_x, east + margin_x, count)
    lat = rng.uniform(south - margin_y, north + margin_y, count)
    accuracy = np.exp(rng.uniform(np.log(3), np.log(60), count))
    return lon, lat, accuracy


def vectorised(
    index: GridIndex, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], acc: npt.NDArray[np.float64]
) -> BatchAssignment:
    batch = index.assign_batch(lon, lat, acc)
    _ = batch.grids, batch.micro_grids  # codes as objects: part of the work a caller needs
    return batch


def naive(
    index: GridIndex, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], acc: npt.NDArray[np.float64]
) -> list[tuple[str | None, str | None, AssignmentStatus]]:
    """Point by point, polygon by polygon (same projection and boundary rule, no index)."""
    grids = list(zip(index.grids.codes, index.grids.geometries, strict=True))
    micros = list(zip(index.micro_grids.codes, index.micro_grids.geometries, strict=True))
    parent = {a.code: a.parent for a in index.micro_grids.areas}
    out: list[tuple[str | None, str | None, AssignmentStatus]] = []
    for lo, la, radius in zip(lon.tolist(), lat.tolist(), acc.tolist(), strict=True):
        x, y = index.projection.forward_point(lo, la)
        point = shapely.Point(x, y)
        grid = next((str(code) for code, polygon in grids if polygon.intersects(point)), None)
        if grid is None:
            out.append((None, None, AssignmentStatus.UNASSIGNED))
            continue
        micro = next(
            (str(code) for code, polygon in micros if parent[code] == grid and polygon.intersects(point)),
            None,
        )
        touched = sum(1 for _, polygon in grids if polygon.distance(point) <= radius)
        out.append((grid, micro, AssignmentStatus.AMBIGUOUS if touched > 1 else AssignmentStatus.ASSIGNED))
    return out


def main() -> int:
    args = parse_args(__doc__ or "")
    count = QUICK if args.quick else FULL
    sample = BASELINE_QUICK if args.quick else BASELINE_FULL
    index = GridIndex(load_areas(DEMO_GRID_FILE))
    lon, lat, acc = make_points(index, count, args.seed)
    vectorised(index, lon[:10_000], lat[:10_000], acc[:10_000])  # warm caches (shrunken grids)

    seconds, batch = best_of(3, lambda: vectorised(index, lon, lat, acc))
    rate = count / seconds
    start = time.perf_counter()
    expected = naive(index, lon[:sample], lat[:sample], acc[:sample])
    baseline_seconds = time.perf_counter() - start
    baseline_rate = sample / baseline_seconds

    got = [(batch[i].grid, batch[i].micro_grid, batch[i].status) for i in range(sample)]
    disagree = sum(1 for a, b in zip(got, expected, strict=True) if a != b)
    counts = {str(k): v for k, v in batch.counts().items()}
    ratio = rate / baseline_rate
    print(f"machine: {machine()}")
    print(f"vectorised: {count:,} points in {seconds:.3f} s = {rate:,.0f} points/s  {counts}")
    print(f"naive loop: {sample:,} points in {baseline_seconds:.3f} s = {baseline_rate:,.0f} points/s")
    print(
        f"ratio vectorised / naive: {ratio:,.1f}x; target {TARGET_POINTS_PER_S:,} points/s: "
        f"{'met' if rate >= TARGET_POINTS_PER_S else 'NOT met'}; disagreements on the sample: {disagree}"
    )
    emit(
        "geo_assign",
        {
            "points": count,
            "seconds": round(seconds, 4),
            "points_per_s": round(rate),
            "baseline_points": sample,
            "baseline_points_per_s": round(baseline_rate),
            **counts,
            "disagreements": disagree,
        },
        ratio,
        TARGET_POINTS_PER_S,
    )
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
