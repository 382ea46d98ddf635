import numpy as np
import pytest
import shapely

from geo import (
    AssignmentStatus,
    GridIndex,
    GridLoadError,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geodesic_distance_m,
    load_areas,
    to_wgs84,
    wgs84_to_gcj02,
)
from geo.demo_district import DEMO_GRID_FILE, build_demo_district

pytestmark = pytest.mark.unit


def _square(
    code: str, x0: float, y0: float, size: float = 0.01, kind: str = "grid", parent: str | None = None
) -> dict:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {
        "type": "Feature",
        "properties": {"code": code, "name_zh": code, "name_en": code, "kind": kind, "parent": parent},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def _index(*features: dict) -> GridIndex:
    return GridIndex(load_areas({"type": "FeatureCollection", "features": list(features)}))


def test_demo_district_has_six_grids_and_thirty_micro_grids() -> None:
    areas = load_areas(DEMO_GRID_FILE)
    grids = [a for a in areas if a.kind == "grid"]
    micro = [a for a in areas if a.kind == "micro_grid"]
    assert [g.name_zh for g in sorted(grids, key=lambda a: a.code)] == [
        "真光网格",
        "清涧网格",
        "星河网格",
        "兰溪网格",
        "高陵网格",
        "真西网格",
    ]
    assert len(micro) == 30
    # micro-grids tile their grid exactly
    for grid in grids:
        union = shapely.union_all([m.geometry for m in micro if m.parent == grid.code])
        assert abs(union.area - grid.geometry.area) < 1e-12
    assert build_demo_district() == build_demo_district()


def test_point_on_a_shared_edge_goes_to_the_smaller_code() -> None:
    index = _index(_square("B", 121.41, 31.25), _square("A", 121.40, 31.25))
    on_edge = index.assign(121.41, 31.255)
    assert on_edge.grid == "A"
    inside_b = index.assign(121.415, 31.255)
    assert inside_b.grid == "B"
    assert inside_b.status is AssignmentStatus.ASSIGNED


def test_accuracy_circle_across_a_boundary_is_ambiguous() -> None:
    index = _index(_square("A", 121.40, 31.25), _square("B", 121.41, 31.25))
    near_edge = index.assign(121.4099, 31.255, accuracy_m=30)  # ~9.5 m from the edge
    assert near_edge.status is AssignmentStatus.AMBIGUOUS
    assert near_edge.grid == "A"
    assert near_edge.candidates == ("A", "B")
    precise = index.assign(121.4099, 31.255, accuracy_m=5)
    assert precise.status is AssignmentStatus.ASSIGNED


def test_point_outside_every_grid_is_unassigned_not_dropped() -> None:
    index = _index(_square("A", 121.40, 31.25))
    result = index.assign(121.50, 31.30, accuracy_m=10)
    assert result.status is AssignmentStatus.UNASSIGNED
    assert result.grid is None


def test_vectorised_assignment_matches_one_by_one() -> None:
    index = GridIndex(load_areas(DEMO_GRID_FILE))
    rng = np.random.default_rng(3)
    lon = rng.uniform(121.38, 121.43, 2000)
    lat = rng.uniform(31.235, 31.27, 2000)
    grids, micro = index.assign_many(lon, lat)
    for i in range(0, 2000, 97):
        single = index.assign(float(lon[i]), float(lat[i]))
        assert single.grid == grids[i]
        assert single.micro_grid == micro[i]
    assert any(g is None for g in grids)  # some points fall outside the district


def test_invalid_and_overlapping_polygons_are_reported_by_code() -> None:
    bowtie = _square("BAD", 121.40, 31.25)
    bowtie["geometry"]["coordinates"] = [
        [[121.40, 31.25], [121.41, 31.26], [121.41, 31.25], [121.40, 31.26], [121.40, 31.25]]
    ]
    with pytest.raises(GridLoadError) as info:
        load_areas(
            {
                "features": [
                    bowtie,
                    _square("X", 121.40, 31.25),
                    _square("Y", 121.405, 31.25),
                    _square("X", 1, 1),
                ]
            }
        )
    problems = " | ".join(info.value.problems)
    assert "BAD: invalid polygon" in problems
    assert "X overlaps Y" in problems
    assert "X: duplicate code" in problems


def test_micro_grid_needs_an_existing_parent() -> None:
    with pytest.raises(GridLoadError, match="parent grid 'NOPE'"):
        load_areas({"features": [_square("M1", 121.4, 31.25, kind="micro_grid", parent="NOPE")]})


def test_gcj02_round_trip_is_far_below_a_metre() -> None:
    for lon, lat in [(121.4, 31.25), (116.391, 39.907), (113.264, 23.129)]:
        back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
        assert geodesic_distance_m(lon, lat, *back) < 0.01
        bd = bd09_to_wgs84(*gcj02_to_bd09(*wgs84_to_gcj02(lon, lat)))
        assert geodesic_distance_m(lon, lat, *bd) < 0.05


def test_gcj02_offset_in_shanghai_is_hundreds_of_metres() -> None:
    gcj = wgs84_to_gcj02(121.4, 31.25)
    offset = geodesic_distance_m(121.4, 31.25, *gcj)
    assert 300 < offset < 700


def test_outside_china_gcj02_is_wgs84() -> None:
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert to_wgs84(2.35, 48.85, "gcj02") == (2.35, 48.85)


def test_geodesic_distance_matches_a_known_value() -> None:
    # One degree of latitude at the equator is 110,574 m on WGS-84.
    assert geodesic_distance_m(0, 0, 0, 1) == pytest.approx(110_574, abs=2)
    # One degree of longitude at 31.25° N is about 95,270 m.
    assert geodesic_distance_m(121.0, 31.25, 122.0, 31.25) == pytest.approx(95_270, rel=2e-3)


def test_micro_grid_outside_its_parent_is_reported_by_code() -> None:
    with pytest.raises(GridLoadError) as info:
        load_areas(
            {
                "features": [
                    _square("A", 121.40, 31.25),
                    _square("A-1", 121.40, 31.25, size=0.005, kind="micro_grid", parent="A"),
                    _square("A-2", 121.408, 31.25, size=0.005, kind="micro_grid", parent="A"),
                ]
            }
        )
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("A-2: lies ")
    assert "outside its parent grid A" in info.value.problems[0]


def _naive(
    index: GridIndex, lon: float, lat: float, accuracy: float
) -> tuple[str, str | None, tuple[str, ...]]:
    """The rule written out point by point: status, grid, grids touched by the accuracy circle."""
    x, y = index.projection.forward_point(lon, lat)
    point = shapely.Point(x, y)
    codes = [str(c) for c in index.grids.codes]
    inside = [c for c, g in zip(codes, index.grids.geometries, strict=True) if g.intersects(point)]
    touched = tuple(
        c for c, g in zip(codes, index.grids.geometries, strict=True) if g.distance(point) <= accuracy
    )
    if not inside:
        return "unassigned", None, touched if accuracy > 0 else ()
    return ("ambiguous" if len(touched) > 1 else "assigned"), inside[0], touched


def test_batch_assignment_matches_the_rule_point_by_point() -> None:
    index = GridIndex(load_areas(DEMO_GRID_FILE))
    rng = np.random.default_rng(11)
    n = 20_000
    lon = rng.uniform(121.380, 121.430, n)
    lat = rng.uniform(31.236, 31.269, n)
    accuracy = rng.choice([0.0, 5.0, 20.0, 60.0, 250.0], n)
    batch = index.assign_batch(lon, lat, accuracy)
    counts = batch.counts()
    assert all(counts[status] > 100 for status in AssignmentStatus)
    for i in range(0, n, 37):
        status, grid, touched = _naive(index, float(lon[i]), float(lat[i]), float(accuracy[i]))
        single = batch[i]
        assert (single.status, single.grid) == (status, grid), i
        if status != "assigned":
            assert single.candidates == touched, i
        micro = single.micro_grid
        assert micro is None if grid is None else index.area(str(micro)).parent == grid


def test_batch_and_single_assignment_agree_and_bad_accuracy_is_refused() -> None:
    index = GridIndex(load_areas(DEMO_GRID_FILE))
    lon, lat = np.array([121.3905, 121.4030, 121.60]), np.array([31.2600, 31.2600, 31.10])
    batch = index.assign_batch(lon, lat, np.array([5.0, 5.0, 5.0]))
    assert [batch[i] for i in range(3)] == [index.assign(lon[i], lat[i], 5.0) for i in range(3)]
    assert list(batch.grids) == ["ZR01", "ZR02", None]
    with pytest.raises(ValueError, match="accuracy_m"):
        index.assign_batch(lon, lat, np.array([5.0, -1.0, 5.0]))
    with pytest.raises(ValueError, match="accuracy_m"):
        index.assign_batch(lon, lat, np.array([5.0, np.nan, 5.0]))


def test_point_on_a_shared_edge_stays_with_the_smaller_code_in_batches_too() -> None:
    index = _index(
        _square("B", 121.41, 31.25),
        _square("A", 121.40, 31.25),
        _square("B-1", 121.41, 31.25, kind="micro_grid", parent="B"),
        _square("A-1", 121.40, 31.25, kind="micro_grid", parent="A"),
    )
    batch = index.assign_batch([121.41, 121.41], [31.255, 31.255], [0.0, 1.0])
    assert list(batch.grids) == ["A", "A"]
    assert list(batch.micro_grids) == ["A-1", "A-1"]
    assert batch[0].status is AssignmentStatus.ASSIGNED
    assert batch[1].status is AssignmentStatus.AMBIGUOUS and batch[1].candidates == ("A", "B")


def test_gcj02_inverse_on_arrays_matches_the_scalar_one() -> None:
    from geo import gcj02_to_wgs84, gcj02_to_wgs84_many

    points = [(121.38 + i * 0.0007, 31.23 + i * 0.0005) for i in range(200)] + [(2.35, 48.85)]
    lon, lat = gcj02_to_wgs84_many([p[0] for p in points], [p[1] for p in points])
    for x, y, point in zip(lon.tolist(), lat.tolist(), points, strict=True):
        expected = gcj02_to_wgs84(*point)
        assert abs(x - expected[0]) < 1e-11 and abs(y - expected[1]) < 1e-11
    assert (lon[-1], lat[-1]) == (2.35, 48.85)  # outside China GCJ-02 is WGS-84


def test_many_points_in_mixed_datums_match_the_scalar_conversion() -> None:
    from geo import Datum, to_wgs84, to_wgs84_many

    datums = [Datum.GCJ02, Datum.WGS84, Datum.BD09, "gcj02", "bd09", "wgs84"] * 20
    points = [(121.38 + i * 0.0011, 31.23 + i * 0.0007) for i in range(len(datums))]
    lons, lats = to_wgs84_many([p[0] for p in points], [p[1] for p in points], datums)
    for x, y, (lon, lat), datum in zip(lons, lats, points, datums, strict=True):
        expected = to_wgs84(lon, lat, datum)
        assert abs(x - expected[0]) < 1e-11 and abs(y - expected[1]) < 1e-11
    assert (lons[1], lats[1]) == points[1]  # WGS-84 passes through untouched
    assert to_wgs84_many([], [], []) == ([], [])
