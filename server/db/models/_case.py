"""Grid case records and the findings that make them up."""

import os
import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = [
    "CASE_STATE_LABELS",
    "SEARCH_SEPARATOR",
    "Case",
    "CaseBase",
    "CaseEvent",
    "CaseSearch",
    "CaseState",
    "Finding",
    "FindingRevision",
    "new_case_id",
    "search_content",
    "search_scope",
]


def new_case_id(at: datetime) -> str:
    """A case id that sorts by creation: a version 7 UUID (RFC 9562: the milliseconds of ``at``,
    then 74 random bits). Cases opened together land on the same few B-tree pages of every index
    that holds case ids (the primary key, findings, events, links) instead of one random page
    each, which is most of what a page of new cases costs SQLite."""
    millis = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = (rand >> 62) & 0xFFF, rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=millis << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b))


class CaseState(StrEnum):
    """The five-step closed loop (五步闭环) plus closed, reopened and parked."""

    VISIT_SURVEY = "visit_survey"
    PROBLEM_FOUND = "problem_found"
    COORDINATING = "coordinating"
    RESOLVING = "resolving"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"
    REOPENED = "reopened"
    PARKED = "parked"


CASE_STATE_LABELS: dict[CaseState, tuple[str, str]] = {
    CaseState.VISIT_SURVEY: ("走访调研", "Visit and survey"),
    CaseState.PROBLEM_FOUND: ("发现问题", "Problem found"),
    CaseState.COORDINATING: ("协调协同", "Coordinating"),
    CaseState.RESOLVING: ("解决解释", "Solving or explaining"),
    CaseState.FOLLOW_UP: ("跟踪问效", "Following up"),
    CaseState.CLOSED: ("已办结", "Closed"),
    CaseState.REOPENED: ("已重启", "Reopened"),
    CaseState.PARKED: ("挂起待办", "Parked"),
}


class CaseBase(SQLModel):
    grid_code: str | None = Field(default=None, max_length=32)
    """None while the case waits in the unassigned queue."""
    micro_grid_code: str | None = Field(default=None, max_length=32, index=True)
    intake_grid: str | None = Field(default=None, max_length=32)
    """The grid database the first finding arrived through: who sees it while it is unassigned."""
    assignment: str = Field(default="assigned", max_length=16)
    """assigned, ambiguous (accuracy circle crosses a boundary) or unassigned."""
    assignment_candidates: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    concern_code: str = Field(max_length=16, index=True)
    severity: str = Field(max_length=16)
    state: CaseState = Field(default=CaseState.PROBLEM_FOUND, sa_type=String(24))
    lat: float
    lon: float
    summary: str = ""


class Case(CaseBase, table=True):
    __tablename__ = "cases"
    # Every index costs each new case an entry (SQLite's share of a merge is mostly index pages),
    # so each one is here for a query of the case list or the merge engine:
    # - primary key (id), unique case_no: lookups by id, numbers never given twice;
    # - created_id, grid_created_id, state_created_id: pages newest first (admin, a grid, a state)
    #   walk them and stop after a page; their first columns also serve grid and state counts;
    # - micro_grid_code, concern_code: those filters, and their counts;
    # - unassigned_intake: the unassigned half of a grid's scope (grid_code IS NULL), a few rows;
    # - open_deadline_id: overdue cases (a range), with the id so the department check needs no
    #   table row;
    # - lat_lon: the bounding box (a latitude band, longitude checked in the index).
    __table_args__ = (
        Index("ix_cases_created_id", "created_at", "id"),
        Index("ix_cases_grid_created_id", "grid_code", "created_at", "id"),
        Index("ix_cases_state_created_id", "state", "created_at", "id"),
        Index(
            "ix_cases_unassigned_intake",
            "intake_grid",
            sqlite_where=text("grid_code IS NULL"),
            postgresql_where=text("grid_code IS NULL"),
        ),
        Index("ix_cases_open_deadline_id", "open_deadline_at", "id"),
        Index("ix_cases_lat_lon", "lat", "lon"),
    )

    id: str = Field(primary_key=True, max_length=36)
    case_no: str = Field(unique=True, max_length=32)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """Moves on every state change and dispatch: writers compare-and-set it, so two leaders acting
    at once cannot both win."""
    open_deadline_at: datetime | None = utc_field(nullable=True)
    """Earliest deadline among the case's unreported dispatches (None when none is open): the case
    is overdue when it has passed. Kept by the case service under the case row's lock."""


SEARCH_SEPARATOR = "\x1f"
"""Between the parts of ``CaseSearch.content`` (ASCII unit separator): a search term without it
matches the content exactly when it matches one of the parts."""


def search_content(case_no: str, summary: str, notes: Iterable[str]) -> str:
    """``CaseSearch.content`` of a case: its number, the distinct notes of its findings, and its
    summary unless a note already holds it (a summary is normally its first note, cut at 500)."""
    parts = [case_no]
    seen: set[str] = set()
    for note in notes:
        if note and note not in seen:
            seen.add(note)
            parts.append(note)
    if summary and not any(summary in note for note in seen):
        parts.append(summary)
    return SEARCH_SEPARATOR.join(parts)


def search_scope(grid_code: str | None, intake_grid: str | None) -> str:
    """The grid whose readers see a case: its grid, or while unassigned the grid it arrived through
    (``CaseAccess.grid_clause``); "" for neither."""
    if grid_code is not None:
        return grid_code
    return intake_grid if intake_grid is not None else ""


class CaseSearch(SQLModel, table=True):
    """What the case list's text filter reads: one row per case holding its summary, its case
    number and the notes of all its findings (withdrawn ones too), joined by ``SEARCH_SEPARATOR``.

    Rows are clustered by ``scope_grid`` (``search_scope`` of the case), so a grid leader's count
    reads the rows of their grids only, a short narrow run instead of every case and finding; a
    page looks its cases up by ``case_id`` (unique: one row per case). Kept by the merge engine
    (``sync.case_search``) and by split and merge: the content must hold exactly the case's
    current parts, or the filter would find too much or too little.
    """

    __tablename__ = "case_search"
    __table_args__ = (UniqueConstraint("case_id", name="uq_case_search_case"), {"sqlite_with_rowid": False})

    scope_grid: str = Field(primary_key=True, max_length=32)
    case_id: str = Field(primary_key=True, foreign_key="cases.id", max_length=36)
    content: str = Field(sa_type=Text)


class Finding(SQLModel, table=True):
    """One field document (hazard finding) as last seen in CouchDB, linked to its case."""

    __tablename__ = "findings"

    doc_id: str = Field(primary_key=True, max_length=200)
    source_db: str = Field(max_length=200)
    rev: str = Field(max_length=200)
    case_id: str | None = Field(default=None, foreign_key="cases.id", index=True)
    author: str = Field(max_length=64)
    device_id: str = Field(max_length=200)
    schema_version: int
    concern_code: str = Field(max_length=16)
    severity: str = Field(max_length=16)
    note: str = ""
    lat: float
    lon: float
    """WGS-84."""
    reported_lat: float
    reported_lon: float
    reported_datum: str = Field(max_length=8)
    accuracy_m: float
    observed_at: datetime = utc_field()
    """The device's clock: shown, never used for ordering."""
    received_at: datetime = utc_field()
    """Server time: when the gateway stored its first revision (its receipt), else when the worker
    first saw it; used for ordering and joining."""
    photos: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    deleted: bool = False
    status_version: int = 0
    """Bumped whenever what the tablet should see about this finding changes."""
    status_published_version: int = 0
    status_doc_rev: str | None = Field(default=None, max_length=200)


class FindingRevision(SQLModel, table=True):
    """Every (document, revision) the worker has applied: replays are no-ops."""

    __tablename__ = "finding_revisions"
    __table_args__ = (UniqueConstraint("doc_id", "rev", name="uq_finding_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    doc_id: str = Field(max_length=200)
    rev: str = Field(max_length=200)
    source_db: str = Field(max_length=200)
    seq: str
    applied_at: datetime = utc_field()


class CaseEvent(SQLModel, table=True):
    """Audit trail of a case: append-only."""

    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=36)
    at: datetime = utc_field()
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=24)
    to_state: str | None = Field(default=None, max_length=24)
    reason: str = ""
    details: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
