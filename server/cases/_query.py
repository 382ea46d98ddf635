"""The case list's filters and its cursor, as SQL conditions (combined with AND).

Order is newest first with the id as tie-break (``created_at DESC, id DESC``, served by the
``ix_cases_*_created_id`` indexes). The cursor is the last row's (created_at, id): cases that
arrive later sort before it, so a cursor stays valid and pages neither repeat nor skip rows.

Each filter comes in two shapes with the same meaning: for a page (``whole_set`` False: the walk
newest first stops after a page, so a correlated look-up per case is cheapest) and for the exact
count of all matches (``whole_set`` True: the set is built once from the narrowest index).
"""

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_
from sqlmodel import col, select

from server.db.models import (
    SEARCH_SEPARATOR,
    Case,
    CaseDispatch,
    CaseSearch,
    CaseState,
    DispatchState,
    as_utc,
)
from server.errors import ApiError

__all__ = [
    "BBox",
    "CaseFilters",
    "decode_cursor",
    "department_as_set",
    "department_clause",
    "encode_cursor",
    "filter_clauses",
    "overdue_clause",
    "search_text",
    "text_clause",
]

_LIKE_ESCAPE = "\\"


def encode_cursor(case: Case) -> str:
    raw = f"{as_utc(case.created_at).isoformat()}|{case.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, sep, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        if not sep or not case_id:
            raise ValueError(cursor)
        return datetime.fromisoformat(created), case_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "bad_request", "分页游标无效", "invalid cursor") from exc


def cursor_clause(cursor: str) -> ColumnElement[bool]:
    created, case_id = decode_cursor(cursor)
    return or_(
        col(Case.created_at) < created,
        and_(col(Case.created_at) == created, col(Case.id) < case_id),
    )


@dataclass(frozen=True)
class BBox:
    """WGS-84 bounding box."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def parse(cls, text: str) -> "BBox":
        try:
            min_lon, min_lat, max_lon, max_lat = (float(part) for part in text.split(","))
        except ValueError as exc:
            raise ApiError(
                400,
                "bad_request",
                "bbox 应为 最小经度,最小纬度,最大经度,最大纬度（WGS-84）",
                "bbox must be min_lon,min_lat,max_lon,max_lat (WGS-84)",
            ) from exc
        if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
            raise ApiError(400, "bad_request", "bbox 范围无效", "bbox corners out of range or swapped")
        return cls(min_lon, min_lat, max_lon, max_lat)


@dataclass(frozen=True)
class CaseFilters:
    grid: str | None = None
    micro_grid: str | None = None
    state: CaseState | None = None
    concern: str | None = None
    department: str | None = None
    overdue: bool | None = None
    bbox: BBox | None = None
    text: str | None = None


def search_text(q: str | None) -> str | None:
    """The ``q`` parameter as the text filter: stripped, None when empty; control characters are
    refused (one of them separates the parts of a case's search row)."""
    text = q.strip() if q else ""
    if not text:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ApiError(400, "bad_request", "搜索词不能包含控制字符", "q must not contain control characters")
    return text


def overdue_clause(now: datetime) -> ColumnElement[bool]:
    """The case has a dispatch whose deadline passed without a report (its earliest open deadline
    is in the past: one indexed column, no look into the dispatches)."""
    return col(Case.open_deadline_at) < now


def department_as_set(filters: CaseFilters) -> bool:
    """Whether a count takes "dispatched to the department" as a set (all its dispatches) or checks
    it case by case: with ``overdue`` the overdue cases (one index range, ids included) are
    usually far fewer than a department's dispatches over the years, so they drive the count."""
    return filters.overdue is not True


def department_clause(department: str, *, whole_set: bool = False) -> ColumnElement[bool]:
    """The case was dispatched to this department (at any time), and that dispatch was not
    cancelled: a cancelled dispatch is no longer the department's work.

    A page walks cases newest first and stops after a page: a correlated EXISTS (one index seek on
    (department_code, case_id) per case looked at) is cheapest. A count needs the whole set: an
    uncorrelated ``id IN (SELECT ...)`` builds it once. (PostgreSQL plans both as semi-joins;
    SQLite takes them literally.)
    """
    live = col(CaseDispatch.state) != DispatchState.CANCELLED
    if whole_set:
        return col(Case.id).in_(
            select(CaseDispatch.case_id).where(col(CaseDispatch.department_code) == department, live)
        )
    return exists().where(
        col(CaseDispatch.department_code) == department, col(CaseDispatch.case_id) == col(Case.id), live
    )


def _like(text: str) -> str:
    escaped = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    """Substring match, case-insensitive. Text without cased letters (Chinese, digits) needs no case
    folding, and plain LIKE is then the same match at 2-3x the speed of ILIKE on PostgreSQL."""
    pattern = _like(text)
    if text.lower() == text.upper():
        return column.like(pattern, escape=_LIKE_ESCAPE)  # type: ignore[no-any-return]
    return column.ilike(pattern, escape=_LIKE_ESCAPE)  # type: ignore[no-any-return]


def text_clause(
    text: str, *, whole_set: bool = False, scope_grids: Sequence[str] | None = None
) -> ColumnElement[bool]:
    """The text is in the case's summary, its case number or a note of any of its findings: in
    its ``CaseSearch`` row, which holds exactly those parts. A count reads the rows of
    ``scope_grids`` only (the reader's grids, or the grid filter; None: every row).

    The text must not contain ``SEARCH_SEPARATOR`` (the API refuses control characters)."""
    if SEARCH_SEPARATOR in text:
        raise ValueError("search text contains the search separator")
    matches = _contains(col(CaseSearch.content), text)
    if whole_set:
        rows = select(CaseSearch.case_id).where(matches)
        if scope_grids is not None:
            rows = rows.where(col(CaseSearch.scope_grid).in_(list(scope_grids)))
        return col(Case.id).in_(rows)
    # By case id alone (unique): PostgreSQL then walks the page's index and looks each case up,
    # where a second, computed key made it misjudge the match rate and sort every match.
    return exists().where(col(CaseSearch.case_id) == col(Case.id), matches)


def filter_clauses(
    filters: CaseFilters,
    now: datetime,
    *,
    whole_set: bool = False,
    scope_grids: Sequence[str] | None = None,
) -> list[ColumnElement[bool]]:
    """Conditions for a page (``whole_set`` False) or for counting every match (True); a count may
    be told the grids the reader's scope is limited to (``scope_grids``)."""
    clauses: list[ColumnElement[bool]] = []
    if filters.grid is not None:
        clauses.append(
            or_(
                col(Case.grid_code) == filters.grid,
                and_(col(Case.grid_code).is_(None), col(Case.intake_grid) == filters.grid),
            )
        )
    if filters.micro_grid is not None:
        clauses.append(col(Case.micro_grid_code) == filters.micro_grid)
    if filters.state is not None:
        clauses.append(col(Case.state) == filters.state)
    if filters.concern is not None:
        clauses.append(col(Case.concern_code) == filters.concern)
    if filters.department is not None:
        clauses.append(
            department_clause(filters.department, whole_set=whole_set and department_as_set(filters))
        )
    if filters.overdue is not None:
        clauses.append(
            overdue_clause(now)
            if filters.overdue
            else or_(col(Case.open_deadline_at).is_(None), col(Case.open_deadline_at) >= now)
        )
    if filters.bbox is not None:
        box = filters.bbox
        clauses.append(col(Case.lon).between(box.min_lon, box.max_lon))
        clauses.append(col(Case.lat).between(box.min_lat, box.max_lat))
    if filters.text:
        grids = [filters.grid] if filters.grid is not None else scope_grids
        clauses.append(text_clause(filters.text, whole_set=whole_set, scope_grids=grids))
    return clauses
