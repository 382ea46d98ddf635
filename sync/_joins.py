"""Join candidates for the merge engine: live findings of open cases bucketed on a local plane
(``_JoinIndex``), kept by one worker between pages and refreshed from ``cases.updated_at``
(``JoinCache``), and the lock that keeps two workers from deciding joins in one scope at once
(``lock_join_scopes``). The rules themselves are described in ``sync.merge``."""

import functools
import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select as sa_select
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import Taxonomy
from server.db.models import Case, CaseState, Finding, as_utc

__all__ = ["JoinCache", "JoinEvidence", "distance_m", "join_scope_key", "lock_join_scopes"]

_METRES_PER_DEG_LAT = 110_574.0
_METRES_PER_DEG_LON_EQUATOR = 111_320.0


@dataclass(frozen=True)
class JoinEvidence:
    matched_finding: str
    matched_author: str
    case_id: str
    distance_m: float
    gap_s: float
    radius_m: float
    window_h: float


class _Member(NamedTuple):
    """A live finding of an open case, as a join target."""

    finding_id: str
    case_id: str
    author: str
    lat: float
    lon: float
    received_at: datetime


_Entry = tuple[float, float, float, str, str, str, float, float, datetime]
"""A member as the index keeps it: x, y (metres), receive timestamp, then the ``_Member`` fields.
An exact tuple of plain values, which the garbage collector stops tracking: a worker holding a
hundred thousand candidates does not traverse them on every full collection."""
_Key = tuple[str, str, int, int]

_MAX_CELL_M = 60.0
"""Cells are at most this wide: a concern with a wide radius (500 m for a missing person) is
searched ring by ring from the finding's own cell outwards, instead of every member within three
radius-wide cells (hundreds, where such findings crowd together) being compared."""


@functools.lru_cache(maxsize=64)
def _rings(reach: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Cell offsets grouped by Chebyshev distance 0..reach from the centre cell."""
    rings: list[list[tuple[int, int]]] = [[] for _ in range(reach + 1)]
    for dx in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            rings[max(abs(dx), abs(dy))].append((dx, dy))
    return tuple(tuple(ring) for ring in rings)


@dataclass
class _JoinIndex:
    """Open-case findings bucketed by (grid, concern, cell), on a local plane (metres east/north
    of ``lat0``: exact to well under 0.1 % across a district). A concern's cells are its radius
    divided into ``reach`` equal parts of at most ``_MAX_CELL_M``."""

    radius: dict[str, float]
    window: dict[str, float]
    lat0: float = 0.0
    cells: dict[_Key, list[_Entry]] = field(default_factory=lambda: defaultdict(list))
    by_case: dict[str, list[tuple[_Key, _Entry]]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self._x_scale = _METRES_PER_DEG_LON_EQUATOR * math.cos(math.radians(self.lat0))

    def _xy(self, lat: float, lon: float) -> tuple[float, float]:
        return lon * self._x_scale, lat * _METRES_PER_DEG_LAT

    def _cell(self, concern: str) -> tuple[float, int]:
        """(cell width, reach): a finding within the radius is at most ``reach`` cells away."""
        radius = self.radius[concern]
        reach = max(1, math.ceil(radius / _MAX_CELL_M))
        return radius / reach, reach

    def add(self, grid: str, concern: str, member: _Member) -> None:
        size, _ = self._cell(concern)
        x, y = self._xy(member.lat, member.lon)
        key = (grid, concern, math.floor(x / size), math.floor(y / size))
        entry: _Entry = (x, y, member.received_at.timestamp(), *member)
        self.cells[key].append(entry)
        self.by_case[member.case_id].append((key, entry))

    def remove_case(self, case_id: str) -> None:
        for key, entry in self.by_case.pop(case_id, ()):
            self.cells[key].remove(entry)

    def match(
        self, grid: str, concern: str, lat: float, lon: float, received_at: datetime
    ) -> JoinEvidence | None:
        """The nearest live finding within the radius and window (then the earliest received, then
        the smallest id). Rings of cells are searched outwards; a member ``d + 1`` rings away is
        more than ``d`` cell widths away, so the search stops once the best is at most that far."""
        radius, window_h = self.radius[concern], self.window[concern]
        size, reach = self._cell(concern)
        x, y = self._xy(lat, lon)
        cx, cy = math.floor(x / size), math.floor(y / size)
        now, window_s, limit = received_at.timestamp(), window_h * 3600, radius * radius
        best: _Entry | None = None
        best_squared = math.inf
        cells = self.cells
        for ring, offsets in enumerate(_rings(reach)):
            cleared = (ring - 1) * size  # every member of this ring and beyond is farther than this
            if best is not None and best_squared <= cleared * cleared:
                break
            for dx, dy in offsets:
                for entry in cells.get((grid, concern, cx + dx, cy + dy), ()):
                    squared = (entry[0] - x) ** 2 + (entry[1] - y) ** 2
                    # Either order: receive times are the gateway's, not the order pages are applied.
                    if squared > limit or squared > best_squared or abs(now - entry[2]) > window_s:
                        continue
                    if best is None or squared < best_squared or entry[2:4] < best[2:4]:
                        best, best_squared = entry, squared
        if best is None:
            return None
        member = _Member(*best[3:])
        return JoinEvidence(
            matched_finding=member.finding_id,
            matched_author=member.author,
            case_id=member.case_id,
            distance_m=round(distance_m(lat, lon, member.lat, member.lon), 2),
            gap_s=round((received_at - member.received_at).total_seconds(), 3),
            radius_m=radius,
            window_h=window_h,
        )


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two nearby WGS-84 points (equirectangular; exact enough within a district)."""
    mean = math.radians((lat1 + lat2) / 2)
    dy = (lat2 - lat1) * _METRES_PER_DEG_LAT
    dx = (lon2 - lon1) * _METRES_PER_DEG_LON_EQUATOR * math.cos(mean)
    return math.hypot(dx, dy)


_LOCK_SCOPES = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k) ORDER BY k")


def join_scope_key(grid: str, concern: str) -> int:
    """The PostgreSQL advisory lock key of one join scope: a signed 64-bit hash, the same in every
    process (Python's ``hash`` is not)."""
    digest = hashlib.blake2b(f"gridpatrol.join\x1f{grid}\x1f{concern}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_join_scopes(session: AsyncSession, scopes: set[tuple[str, str]]) -> None:
    """Hold the (grid, concern) scopes a page's new findings may join in, until its transaction ends.

    Without it, two workers each applying a page with a finding of the same concern near the same
    spot (say one from the grid's alerts database, one from its grid database) both search for a
    case to join before either has committed, both find none, and open two cases. The search and
    the case it leads to must be one step per scope, hence a lock per (grid, concern):
    ``pg_advisory_xact_lock``, transaction-scoped (released by the commit or rollback that ends
    the page, never left behind by a crash), taken in key order so two pages never wait on each
    other in a cycle, and taken before the page writes any row. The page holds only its findings'
    row locks while it waits (``server.db.locks``): every page takes those before its scopes, so
    the holder of a scope never waits for them. The second page then searches after the first
    committed: in READ COMMITTED every statement sees what was committed before it began, and the
    worker's ``JoinCache`` re-reads every case whose ``updated_at`` moved since its last look, so
    the first page's cases are candidates. The page takes its receive time after the locks, later
    than theirs.

    Why not lease a grid's alerts and grid feeds together instead: the scope is the grid where a
    finding *is*, which is not always the grid whose database it came in (a coordinator's finding,
    a point just across a boundary, a document written straight to CouchDB), so any feed may
    compete for any grid's scope. The lock follows the scope; feed leases could not.

    SQLite needs none: a page's transaction begins with its lease update, which takes SQLite's
    single write lock, so pages are applied one after another.
    """
    if not scopes:
        return
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return
    # One round trip; PostgreSQL evaluates the output list after the sort, so in key order.
    keys = sorted({join_scope_key(grid, concern) for grid, concern in scopes})
    await connection.execute(_LOCK_SCOPES, {"keys": keys})


_REFRESH_SLACK = timedelta(minutes=5)
"""Cases changed this long before the last check are looked at again: other writers' clocks and
transactions still open at the check."""
_CACHE_LIFETIME = timedelta(minutes=10)


class JoinCache:
    """Join candidates kept by one worker between pages: live findings of open cases, per
    (grid, concern), loaded once and then refreshed from the cases anyone else changed.

    Each page: cases whose ``updated_at`` moved since the last check (minus a slack for other
    clocks and open transactions), other than by this worker's own writes, are reloaded; the cases
    chosen for joins are checked to be still open before anything is written, and the whole cache
    is rebuilt when one is not (a state change that did not touch ``updated_at``). The caller must
    ``clear()`` it when a page's transaction fails, since the page's own additions are in it.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.index: _JoinIndex | None = None
        self.loaded: set[tuple[str, str]] = set()
        self.checked_at: datetime | None = None
        self.created_at: datetime | None = None
        self.horizon: datetime | None = None
        """The oldest receive time the index was loaded for."""
        self.own_stamps: set[datetime] = set()
        self.dirty: set[str] = set()
        self.taxonomy: Taxonomy | None = None

    def touched(self, case_id: str) -> None:
        """This worker changed a case's findings in a way the index must re-read."""
        self.dirty.add(case_id)

    async def index_for(
        self,
        session: AsyncSession,
        taxonomy: Taxonomy,
        pairs: set[tuple[str, str]],
        lat0: float,
        now: datetime,
        earliest: datetime | None = None,
    ) -> _JoinIndex:
        """The index for a page's ``pairs``. ``earliest`` is the page's earliest receive time: a
        finding the gateway received days before the worker reads it (the worker was down) needs
        the candidates of its own window, so the cache is rebuilt reaching back that far."""
        window = timedelta(hours=max((_concern_window(taxonomy, c) for c in taxonomy.concerns), default=72.0))
        oldest = min(now, earliest or now) - window
        if (
            self.index is None
            or self.taxonomy is not taxonomy
            or now - (self.created_at or now) > _CACHE_LIFETIME
            or oldest < (self.horizon or oldest)
        ):
            self.clear()
            self.taxonomy, self.created_at, self.horizon = taxonomy, now, oldest
            self.index = _JoinIndex(
                radius={c: _concern_radius(taxonomy, c) for c in taxonomy.concerns},
                window={c: _concern_window(taxonomy, c) for c in taxonomy.concerns},
                lat0=float(round(lat0)),  # whole degrees: every page on the same plane
            )
        index = self.index
        if self.loaded and self.checked_at is not None:
            grids = sorted({g for g, _ in self.loaded})
            since = self.checked_at - _REFRESH_SLACK
            own = sorted(t for t in self.own_stamps if t >= since)
            rows = await session.exec(
                select(Case.id, Case.updated_at).where(
                    col(Case.grid_code).in_(grids),
                    col(Case.updated_at) >= since,
                    col(Case.updated_at).not_in(own),
                )
            )
            changed = {cid for cid, at in rows.all() if as_utc(at) not in self.own_stamps} | self.dirty
            for case_id in changed:
                index.remove_case(case_id)
            await self._load(session, oldest, case_ids=sorted(changed))
        self.dirty.clear()
        self.checked_at = now
        self.own_stamps = {t for t in self.own_stamps if t >= now - 2 * _REFRESH_SLACK}
        for concern in {c for _, c in pairs}:
            index.radius.setdefault(concern, _concern_radius(taxonomy, concern))
            index.window.setdefault(concern, _concern_window(taxonomy, concern))
        missing = pairs - self.loaded
        if missing:
            await self._load(session, oldest, pairs=missing)
            self.loaded |= missing
        return index

    async def _load(
        self,
        session: AsyncSession,
        oldest: datetime,
        *,
        pairs: set[tuple[str, str]] | None = None,
        case_ids: Sequence[str] = (),
    ) -> None:
        assert self.index is not None
        base = (
            sa_select(
                col(Finding.doc_id),
                col(Finding.case_id),
                col(Finding.author),
                col(Finding.lat),
                col(Finding.lon),
                col(Finding.received_at),
                col(Case.grid_code),
                col(Case.concern_code),
            )
            .join(Case, col(Case.id) == col(Finding.case_id))
            .where(
                col(Finding.deleted).is_(False),
                col(Finding.received_at) >= oldest,
                col(Case.state) != CaseState.CLOSED,
            )
        )
        queries = []
        if pairs:
            grids, concerns = sorted({g for g, _ in pairs}), sorted({c for _, c in pairs})
            queries.append(base.where(col(Case.grid_code).in_(grids), col(Case.concern_code).in_(concerns)))
        for start in range(0, len(case_ids), 500):
            queries.append(base.where(col(Case.id).in_(case_ids[start : start + 500])))
        for query in queries:
            rows = (await session.exec(query)).all()  # type: ignore[call-overload]
            for doc_id, case_id, author, lat, lon, received_at, grid, concern in rows:
                if grid is None or case_id is None:
                    continue
                if pairs is not None and (grid, concern) not in pairs:
                    continue
                if pairs is None and (grid, concern) not in self.loaded:
                    continue
                self.index.add(grid, concern, _Member(doc_id, case_id, author, lat, lon, as_utc(received_at)))


def _concern_radius(taxonomy: Taxonomy, code: str) -> float:
    concern = taxonomy.concern(code)
    return concern.radius_m if concern else 30.0


def _concern_window(taxonomy: Taxonomy, code: str) -> float:
    concern = taxonomy.concern(code)
    return concern.join_window_h if concern else 72.0
