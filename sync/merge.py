"""The merge engine: a page of changes from a grid database becomes findings and case records in SQL.

``apply_page`` runs inside the caller's transaction (the same one that moves the checkpoint) and
is idempotent by (document id, revision): replaying a page does nothing. It is set-based: one
query for the revisions already applied, one for the findings already known, one for the open
cases that new findings may join, then bulk inserts.

Joining: a new finding joins an open (not closed) case of the same concern in the same grid when
one of that case's live findings lies within the concern's ``radius_m`` and was *received* at most
``join_window_h`` hours earlier. Receive time is the server's (the worker's clock when it first
applies the finding) and ties follow the feed's sequence order; the device's ``observed_at`` is
shown and never used, so a tablet whose clock is a year off changes nothing. Among several
matches the nearest wins (then the earliest received, then the smallest id): deterministic.
"""

import json
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Table, TextClause, bindparam, insert, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import DocumentInvalid, Taxonomy, upgrade, validate_document
from geo import GridIndex, to_wgs84
from server.db.models import (
    Case,
    CaseEvent,
    CaseLink,
    CaseState,
    Finding,
    FindingRevision,
    as_utc,
    utc_now,
)
from sync.case_numbers import allocate_case_numbers

__all__ = [
    "MERGED_TYPES",
    "WORKER_ACTOR",
    "ChangeOutcome",
    "JoinEvidence",
    "apply_change",
    "apply_page",
]

WORKER_ACTOR = "system:worker"
MERGED_TYPES = frozenset({"hazard"})
_METRES_PER_DEG_LAT = 110_574.0
_METRES_PER_DEG_LON_EQUATOR = 111_320.0
_PROBES_PER_QUERY = 1000  # new findings (boxes) per candidate query


_CANDIDATE_SQL = (
    "SELECT DISTINCT f.doc_id, f.case_id, f.author, f.lat, f.lon, f.received_at, c.grid_code, c.concern_code "
    "FROM {probes} JOIN findings f ON f.concern_code = {c} AND f.lat BETWEEN {a} AND {b} "
    "AND f.lon BETWEEN {d} AND {e} JOIN cases c ON c.id = f.case_id "
    "WHERE f.deleted = false AND f.received_at >= :oldest AND c.state <> :closed"
)


def _candidate_query(postgresql: bool) -> TextClause:
    """Live findings of open cases inside any of the boxes in ``:probes`` (a JSON array): one
    index range probe on (concern_code, lat) per box, in one statement with three parameters."""
    if postgresql:
        sql = _CANDIDATE_SQL.format(
            probes="jsonb_to_recordset(CAST(:probes AS jsonb)) "
            "AS p(c text, a float8, b float8, d float8, e float8)",
            c="p.c",
            a="p.a",
            b="p.b",
            d="p.d",
            e="p.e",
        )
    else:
        sql = _CANDIDATE_SQL.format(
            probes="json_each(:probes) AS p",
            **{k: f"json_extract(p.value, '$.{k}')" for k in "cabde"},
        )
    return text(sql).bindparams(bindparam("oldest", type_=DateTime(timezone=True)))


_CANDIDATES = {
    flag: _candidate_query(flag).columns(received_at=DateTime(timezone=True)) for flag in (False, True)
}


@dataclass(frozen=True)
class ChangeOutcome:
    action: str
    """skipped, duplicate, invalid, created, joined, updated, deleted."""
    case_id: str | None = None
    detail: str = ""
    doc_id: str = ""


@dataclass(frozen=True)
class JoinEvidence:
    matched_finding: str
    matched_author: str
    case_id: str
    distance_m: float
    gap_s: float
    radius_m: float
    window_h: float


@dataclass
class _Member:
    """A live finding of an open case, as a join target."""

    finding_id: str
    case_id: str
    author: str
    lat: float
    lon: float
    received_at: datetime


@dataclass
class _JoinIndex:
    """Open-case findings bucketed by (grid, concern, cell of the concern's radius), on a local
    plane (metres east/north of ``lat0``: exact to well under 0.1 % across a district)."""

    radius: dict[str, float]
    window: dict[str, float]
    lat0: float = 0.0
    cells: dict[tuple[str, str, int, int], list[tuple[float, float, float, _Member]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def __post_init__(self) -> None:
        self._x_scale = _METRES_PER_DEG_LON_EQUATOR * math.cos(math.radians(self.lat0))

    def _xy(self, lat: float, lon: float) -> tuple[float, float]:
        return lon * self._x_scale, lat * _METRES_PER_DEG_LAT

    def add(self, grid: str, concern: str, member: _Member) -> None:
        r = self.radius[concern]
        x, y = self._xy(member.lat, member.lon)
        key = (grid, concern, math.floor(x / r), math.floor(y / r))
        self.cells[key].append((x, y, member.received_at.timestamp(), member))

    def match(
        self, grid: str, concern: str, lat: float, lon: float, received_at: datetime
    ) -> JoinEvidence | None:
        radius, window_h = self.radius[concern], self.window[concern]
        x, y = self._xy(lat, lon)
        cx, cy = math.floor(x / radius), math.floor(y / radius)
        now, window_s, limit = received_at.timestamp(), window_h * 3600, radius * radius
        best: tuple[float, float, str, _Member] | None = None
        cells = self.cells
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for mx, my, mt, member in cells.get((grid, concern, cx + dx, cy + dy), ()):
                    squared = (mx - x) ** 2 + (my - y) ** 2
                    if squared > limit or not 0 <= now - mt <= window_s:
                        continue
                    key = (squared, mt, member.finding_id, member)
                    if best is None or key[:3] < best[:3]:
                        best = key
        if best is None:
            return None
        member = best[3]
        return JoinEvidence(
            matched_finding=member.finding_id,
            matched_author=member.author,
            case_id=member.case_id,
            distance_m=round(distance_m(lat, lon, member.lat, member.lon), 2),
            gap_s=round((received_at - member.received_at).total_seconds(), 3),
            radius_m=radius,
            window_h=window_h,
        )


def _table(model: type[Any]) -> Table:
    """The Core table of a model: Core executemany skips the ORM's per-row bookkeeping."""
    table: Table = model.__table__
    return table


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two nearby WGS-84 points (equirectangular; exact enough within a district)."""
    mean = math.radians((lat1 + lat2) / 2)
    dy = (lat2 - lat1) * _METRES_PER_DEG_LAT
    dx = (lon2 - lon1) * _METRES_PER_DEG_LON_EQUATOR * math.cos(mean)
    return math.hypot(dx, dy)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return utc_now()
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _finding_fields(doc: Mapping[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    location = doc["location"]
    lon, lat = to_wgs84(float(location["lon"]), float(location["lat"]), str(location["datum"]))
    concern = taxonomy.concern(str(doc["concern_code"]))
    severity = doc.get("severity") or (concern.default_severity if concern else "medium")
    return {
        "author": str(doc["author"]),
        "device_id": str(doc["device_id"]),
        "schema_version": int(doc["schema_version"]),
        "concern_code": str(doc["concern_code"]),
        "severity": str(severity),
        "note": str(doc.get("note") or ""),
        "lat": lat,
        "lon": lon,
        "reported_lat": float(location["lat"]),
        "reported_lon": float(location["lon"]),
        "reported_datum": str(location["datum"]),
        "accuracy_m": float(location.get("accuracy_m") or 0.0),
        "observed_at": _parse_time(doc["observed_at"]),
        "photos": sorted((doc.get("_attachments") or {}).keys()),
    }


@dataclass
class _Change:
    doc_id: str
    rev: str
    seq: str
    deleted: bool
    doc: Mapping[str, Any]


def _changes_of(rows: Iterable[Mapping[str, Any]]) -> tuple[list[_Change], list[ChangeOutcome]]:
    """The rows that concern findings, in feed order (last row wins for a repeated id)."""
    kept: dict[str, _Change] = {}
    skipped: list[ChangeOutcome] = []
    for row in rows:
        doc_id = str(row["id"])
        doc: Mapping[str, Any] | None = row.get("doc")
        if doc_id.startswith("_design/") or doc is None:
            skipped.append(ChangeOutcome("skipped", doc_id=doc_id))
            continue
        deleted = bool(row.get("deleted") or doc.get("_deleted"))
        if not deleted and doc.get("type") not in MERGED_TYPES:
            skipped.append(ChangeOutcome("skipped", doc_id=doc_id))
            continue
        rev = str(doc.get("_rev") or row["changes"][0]["rev"])
        kept.pop(doc_id, None)
        kept[doc_id] = _Change(doc_id, rev, str(row.get("seq", "")), deleted, doc)
    return list(kept.values()), skipped


async def _applied(session: AsyncSession, changes: Sequence[_Change]) -> set[tuple[str, str]]:
    if not changes:
        return set()
    pairs = [(c.doc_id, c.rev) for c in changes]
    found: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        rows = await session.exec(
            select(FindingRevision.doc_id, FindingRevision.rev).where(
                col(FindingRevision.doc_id).in_([d for d, _ in chunk])
            )
        )
        wanted = set(chunk)
        found.update(pair for pair in rows.all() if pair in wanted)
    return found


async def _known(session: AsyncSession, doc_ids: Sequence[str]) -> dict[str, Finding]:
    known: dict[str, Finding] = {}
    for start in range(0, len(doc_ids), 500):
        rows = await session.exec(
            select(Finding).where(col(Finding.doc_id).in_(doc_ids[start : start + 500]))
        )
        known.update({f.doc_id: f for f in rows.all()})
    return known


async def _load_join_index(
    session: AsyncSession, taxonomy: Taxonomy, probes: Sequence[tuple[str, str, float, float]], now: datetime
) -> _JoinIndex:
    """Live findings of open cases near the page's new findings (grid, concern, lat, lon)."""
    concerns = {c for _, c, _, _ in probes}
    index = _JoinIndex(
        radius={c: _concern_radius(taxonomy, c) for c in concerns},
        window={c: _concern_window(taxonomy, c) for c in concerns},
        # whole degrees: the same plane for every page, so page boundaries never change a decision
        lat0=float(round(probes[0][2])) if probes else 0.0,
    )
    if not probes:
        return index
    oldest = now - timedelta(hours=max(index.window.values()))
    # Probes of one concern that fall in the same cell of four radii share one box: a wide radius
    # (a missing person: 500 m) would otherwise fetch the same rows once per probe.
    boxes: dict[tuple[str, int, int], list[float]] = {}
    for _, concern, lat, lon in probes:
        r = index.radius[concern] * 1.01
        dlat = r / _METRES_PER_DEG_LAT
        dlon = r / (_METRES_PER_DEG_LON_EQUATOR * math.cos(math.radians(min(89.0, abs(lat) + dlat))))
        x, y = index._xy(lat, lon)
        key = (concern, math.floor(x / (4 * r)), math.floor(y / (4 * r)))
        box = boxes.get(key)
        if box is None:
            boxes[key] = [lat - dlat, lat + dlat, lon - dlon, lon + dlon]
        else:
            box[0], box[1] = min(box[0], lat - dlat), max(box[1], lat + dlat)
            box[2], box[3] = min(box[2], lon - dlon), max(box[3], lon + dlon)
    connection = await session.connection()
    query = _CANDIDATES[connection.dialect.name == "postgresql"]
    items = [{"c": c, "a": a, "b": b, "d": d, "e": e} for (c, _, _), (a, b, d, e) in boxes.items()]
    for start in range(0, len(items), _PROBES_PER_QUERY):
        params = {
            "probes": json.dumps(items[start : start + _PROBES_PER_QUERY]),
            "oldest": oldest,
            "closed": str(CaseState.CLOSED),
        }
        for doc_id, case_id, author, lat, lon, received_at, grid, concern in await connection.execute(
            query, params
        ):
            if concern in index.radius and grid is not None and case_id is not None:
                index.add(grid, concern, _Member(doc_id, case_id, author, lat, lon, as_utc(received_at)))
    return index


def _concern_radius(taxonomy: Taxonomy, code: str) -> float:
    concern = taxonomy.concern(code)
    return concern.radius_m if concern else 30.0


def _concern_window(taxonomy: Taxonomy, code: str) -> float:
    concern = taxonomy.concern(code)
    return concern.join_window_h if concern else 72.0


@dataclass
class _New:
    change: _Change
    fields: dict[str, Any]
    grid: str | None = None
    micro_grid: str | None = None
    assignment: str = "unassigned"
    candidates: list[str] = field(default_factory=list)


async def apply_page(
    session: AsyncSession,
    *,
    source_db: str,
    source_grid: str | None,
    rows: Sequence[Mapping[str, Any]],
    grid_index: GridIndex | None,
    taxonomy: Taxonomy,
    timezone: str = "Asia/Shanghai",
    now: datetime | None = None,
) -> list[ChangeOutcome]:
    """Apply one page of ``_changes`` rows (``include_docs``) in the caller's transaction."""
    now = now or utc_now()
    changes, outcomes = _changes_of(rows)
    applied = await _applied(session, changes)
    outcomes += [ChangeOutcome("duplicate", doc_id=c.doc_id) for c in changes if (c.doc_id, c.rev) in applied]
    changes = [c for c in changes if (c.doc_id, c.rev) not in applied]
    known = await _known(session, [c.doc_id for c in changes])

    revisions: list[dict[str, Any]] = []
    fresh: list[_New] = []
    for change in changes:
        finding = known.get(change.doc_id)
        if change.deleted:
            if finding is None:
                outcomes.append(ChangeOutcome("skipped", doc_id=change.doc_id))
            else:
                outcomes.append(_withdraw(session, finding, change.rev, now))
        else:
            try:
                validate_document(change.doc, taxonomy)
            except DocumentInvalid as exc:
                # The gateway refuses these at push; one can still arrive written straight to CouchDB.
                outcomes.append(ChangeOutcome("invalid", detail=str(exc), doc_id=change.doc_id))
                continue
            current = upgrade(change.doc)
            if finding is None:
                fresh.append(_New(change, _finding_fields(current, taxonomy)))
            else:
                outcomes.append(await _update(session, finding, current, change.rev, taxonomy, now))
        revisions.append(
            {
                "doc_id": change.doc_id,
                "rev": change.rev,
                "source_db": source_db,
                "seq": change.seq,
                "applied_at": now,
            }
        )
    if fresh:
        outcomes += await _create_or_join(
            session, source_db, source_grid, fresh, grid_index, taxonomy, timezone, now
        )
    if revisions:
        await session.exec(insert(_table(FindingRevision)), params=revisions)
    return outcomes


async def apply_change(
    session: AsyncSession,
    *,
    source_db: str,
    source_grid: str | None,
    row: Mapping[str, Any],
    grid_index: GridIndex | None,
    taxonomy: Taxonomy,
    timezone: str = "Asia/Shanghai",
) -> ChangeOutcome:
    """One change on its own (a page of one)."""
    outcomes = await apply_page(
        session,
        source_db=source_db,
        source_grid=source_grid,
        rows=[row],
        grid_index=grid_index,
        taxonomy=taxonomy,
        timezone=timezone,
    )
    return outcomes[0]


def _assign(fresh: Sequence[_New], grid_index: GridIndex | None) -> None:
    if grid_index is None:
        return
    batch = grid_index.assign_batch(
        [n.fields["lon"] for n in fresh],
        [n.fields["lat"] for n in fresh],
        [n.fields["accuracy_m"] for n in fresh],
    )
    for i, new in enumerate(fresh):
        assignment = batch[i]
        new.grid, new.micro_grid = assignment.grid, assignment.micro_grid
        new.assignment = str(assignment.status)
        new.candidates = list(assignment.candidates)


async def _create_or_join(
    session: AsyncSession,
    source_db: str,
    source_grid: str | None,
    fresh: Sequence[_New],
    grid_index: GridIndex | None,
    taxonomy: Taxonomy,
    timezone: str,
    now: datetime,
) -> list[ChangeOutcome]:
    _assign(fresh, grid_index)
    probes = [
        (n.grid, str(n.fields["concern_code"]), float(n.fields["lat"]), float(n.fields["lon"]))
        for n in fresh
        if n.grid is not None
    ]
    index = await _load_join_index(session, taxonomy, probes, now)
    decisions: list[tuple[_New, str, JoinEvidence | None]] = []
    opened: dict[str | None, list[str]] = defaultdict(list)
    for new in fresh:
        concern = new.fields["concern_code"]
        evidence = (
            index.match(new.grid, concern, new.fields["lat"], new.fields["lon"], now) if new.grid else None
        )
        case_id = evidence.case_id if evidence else str(uuid.uuid4())
        if evidence is None:
            opened[new.grid].append(case_id)
        decisions.append((new, case_id, evidence))
        if new.grid:
            member = _Member(
                new.change.doc_id, case_id, new.fields["author"], new.fields["lat"], new.fields["lon"], now
            )
            index.add(new.grid, concern, member)

    numbers: dict[str, str] = {}
    for grid in sorted(opened, key=lambda g: g or ""):
        ids = opened[grid]
        for case_id, number in zip(
            ids, await allocate_case_numbers(session, grid, len(ids), zone=timezone, now=now), strict=True
        ):
            numbers[case_id] = number

    cases: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    outcomes: list[ChangeOutcome] = []
    joined_cases: set[str] = set()
    for new, case_id, evidence in decisions:
        f, doc_id = new.fields, new.change.doc_id
        if evidence is None:
            cases.append(
                {
                    "id": case_id,
                    "case_no": numbers[case_id],
                    "grid_code": new.grid,
                    "micro_grid_code": new.micro_grid,
                    "intake_grid": source_grid,
                    "assignment": new.assignment,
                    "assignment_candidates": new.candidates,
                    "concern_code": f["concern_code"],
                    "severity": f["severity"],
                    "state": CaseState.PROBLEM_FOUND,
                    "lat": f["lat"],
                    "lon": f["lon"],
                    "summary": f["note"][:500],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            events.append(
                _event(
                    case_id,
                    "created",
                    now,
                    reason="新发现 / new finding",
                    details={"finding": doc_id, "rev": new.change.rev, "author": f["author"]},
                    to_state=str(CaseState.PROBLEM_FOUND),
                )
            )
            links.append(_link(doc_id, case_id, "created", f["author"], now))
            outcomes.append(ChangeOutcome("created", case_id, doc_id=doc_id))
        else:
            joined_cases.add(case_id)
            details = {
                "finding": doc_id,
                "rev": new.change.rev,
                "author": f["author"],
                "matched_finding": evidence.matched_finding,
                "matched_author": evidence.matched_author,
                "distance_m": evidence.distance_m,
                "gap_s": evidence.gap_s,
                "radius_m": evidence.radius_m,
                "window_h": evidence.window_h,
            }
            events.append(
                _event(
                    case_id,
                    "finding_joined",
                    now,
                    reason="同一问题的新记录 / same problem seen again",
                    details=details,
                )
            )
            links.append(_link(doc_id, case_id, "joined", f["author"], now, evidence))
            outcomes.append(ChangeOutcome("joined", case_id, doc_id=doc_id))
        findings.append(
            {
                "doc_id": doc_id,
                "source_db": source_db,
                "rev": new.change.rev,
                "case_id": case_id,
                "received_at": now,
                "deleted": False,
                "status_version": 1,
                "status_published_version": 0,
                "status_doc_rev": None,
                **f,
            }
        )
    if cases:
        await session.exec(insert(_table(Case)), params=cases)
    await session.exec(insert(_table(Finding)), params=findings)
    await session.exec(insert(_table(CaseLink)), params=links)
    await session.exec(insert(_table(CaseEvent)), params=events)
    if joined_cases:
        await _touch_cases(session, joined_cases, now)
    return outcomes


async def _touch_cases(session: AsyncSession, case_ids: Iterable[str], now: datetime) -> None:
    ids = sorted(case_ids)
    for start in range(0, len(ids), 500):
        await session.exec(
            update(Case).where(col(Case.id).in_(ids[start : start + 500])).values(updated_at=now)
        )


def _event(
    case_id: str,
    action: str,
    at: datetime,
    *,
    reason: str,
    details: dict[str, Any],
    actor: str = WORKER_ACTOR,
    from_state: str | None = None,
    to_state: str | None = None,
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "at": at,
        "actor": actor,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "details": details,
    }


def _link(
    finding_id: str,
    case_id: str,
    kind: str,
    author: str,
    at: datetime,
    evidence: JoinEvidence | None = None,
    actor: str = WORKER_ACTOR,
) -> dict[str, Any]:
    return {
        "finding_id": finding_id,
        "case_id": case_id,
        "kind": kind,
        "actor": actor,
        "author": author,
        "matched_finding": evidence.matched_finding if evidence else None,
        "matched_author": evidence.matched_author if evidence else None,
        "distance_m": evidence.distance_m if evidence else None,
        "gap_s": evidence.gap_s if evidence else None,
        "radius_m": evidence.radius_m if evidence else None,
        "window_h": evidence.window_h if evidence else None,
        "at": at,
    }


async def _update(
    session: AsyncSession,
    finding: Finding,
    doc: Mapping[str, Any],
    rev: str,
    taxonomy: Taxonomy,
    now: datetime,
) -> ChangeOutcome:
    """A new revision changes what the case shows; it never moves the finding to another case."""
    fields = _finding_fields(doc, taxonomy)
    for key, value in fields.items():
        setattr(finding, key, value)
    finding.rev = rev
    finding.deleted = False
    finding.status_version += 1
    session.add(finding)
    if finding.case_id is not None:
        case = await session.get(Case, finding.case_id)
        if case is not None:
            case.summary = fields["note"][:500] or case.summary
            case.updated_at = now
            session.add(case)
            session.add(
                CaseEvent(
                    case_id=case.id,
                    actor=WORKER_ACTOR,
                    action="finding_updated",
                    reason="记录已更新 / finding revised",
                    details={"finding": finding.doc_id, "rev": rev},
                    at=now,
                )
            )
    return ChangeOutcome("updated", finding.case_id, doc_id=finding.doc_id)


def _withdraw(session: AsyncSession, finding: Finding, rev: str, now: datetime) -> ChangeOutcome:
    finding.deleted = True
    finding.rev = rev
    finding.status_version += 1
    session.add(finding)
    if finding.case_id is not None:
        session.add(
            CaseEvent(
                case_id=finding.case_id,
                actor=WORKER_ACTOR,
                action="finding_withdrawn",
                reason="记录已被作者删除 / finding deleted on the tablet",
                details={"finding": finding.doc_id, "rev": rev},
                at=now,
            )
        )
    return ChangeOutcome("deleted", finding.case_id, doc_id=finding.doc_id)
