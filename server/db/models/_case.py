"""Grid case records and the findings that make them up."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = [
    "CASE_STATE_LABELS",
    "Case",
    "CaseBase",
    "CaseEvent",
    "CaseState",
    "Finding",
    "FindingRevision",
]


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
    grid_code: str | None = Field(default=None, max_length=32, index=True)
    """None while the case waits in the unassigned queue."""
    micro_grid_code: str | None = Field(default=None, max_length=32, index=True)
    intake_grid: str | None = Field(default=None, max_length=32, index=True)
    """The grid database the first finding arrived through: who sees it while it is unassigned."""
    assignment: str = Field(default="assigned", max_length=16)
    """assigned, ambiguous (accuracy circle crosses a boundary) or unassigned."""
    assignment_candidates: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    concern_code: str = Field(max_length=16, index=True)
    severity: str = Field(max_length=16)
    state: CaseState = Field(default=CaseState.PROBLEM_FOUND, sa_type=String(24), index=True)
    lat: float
    lon: float
    summary: str = ""


class Case(CaseBase, table=True):
    __tablename__ = "cases"
    __table_args__ = (
        # The list's order (newest first, id tie-break) and its most common filters.
        Index("ix_cases_created_id", "created_at", "id"),
        Index("ix_cases_grid_created_id", "grid_code", "created_at", "id"),
        Index("ix_cases_state_created_id", "state", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    case_no: str = Field(unique=True, max_length=32)
    created_at: datetime = utc_field(index=True)
    updated_at: datetime = utc_field()
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """Moves on every state change and dispatch: writers compare-and-set it, so two leaders acting
    at once cannot both win."""
    open_deadline_at: datetime | None = utc_field(nullable=True, index=True)
    """Earliest deadline among the case's unreported dispatches (None when none is open): the case
    is overdue when it has passed. Kept by the case service under the case row's lock."""


class Finding(SQLModel, table=True):
    """One field document (hazard finding) as last seen in CouchDB, linked to its case."""

    __tablename__ = "findings"

    doc_id: str = Field(primary_key=True, max_length=200)
    source_db: str = Field(max_length=200)
    rev: str = Field(max_length=200)
    case_id: str | None = Field(default=None, foreign_key="cases.id", index=True)
    author: str = Field(max_length=64, index=True)
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
    """Server time when the worker first saw this finding; used for ordering."""
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
