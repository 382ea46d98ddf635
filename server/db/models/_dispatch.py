"""Dispatches of a case to departments (吹哨报到) and resident follow-ups (回访).

Both are written once and then only move forward (a dispatch is acknowledged, then reported);
nothing here is ever deleted, and every change also leaves a ``CaseEvent``.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Index, String, Text
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = [
    "SATISFACTION_LABELS",
    "CaseDispatch",
    "CaseFollowUp",
    "DispatchState",
    "Satisfaction",
]


class DispatchState(StrEnum):
    DISPATCHED = "dispatched"
    """The whistle was blown (街镇吹哨): waiting for the department to report in."""
    ACKNOWLEDGED = "acknowledged"
    """The department reported in (委办报到) and is handling it."""
    REPORTED = "reported"
    """The department reported back what it did."""


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"


SATISFACTION_LABELS: dict[Satisfaction, tuple[str, str]] = {
    Satisfaction.SATISFIED: ("满意", "Satisfied"),
    Satisfaction.BASICALLY_SATISFIED: ("基本满意", "Basically satisfied"),
    Satisfaction.DISSATISFIED: ("不满意", "Dissatisfied"),
}


class CaseDispatch(SQLModel, table=True):
    """One department asked to act on one case, with a deadline in working days."""

    __tablename__ = "case_dispatches"
    __table_args__ = (
        Index("ix_case_dispatches_department_case", "department_code", "case_id"),
        Index("ix_case_dispatches_open_deadline", "reported_at", "deadline_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=36)
    department_code: str = Field(max_length=32)
    state: DispatchState = Field(default=DispatchState.DISPATCHED, sa_type=String(16))
    instructions: str = Field(default="", sa_type=Text)
    working_days: int
    dispatched_by: str = Field(max_length=64)
    dispatched_at: datetime = utc_field()
    deadline_at: datetime = Field(sa_type=DateTime(timezone=True))
    """End of the last working day (local time), stored in UTC."""
    deadline_provisional: bool = False
    """The calendar did not cover every day up to the deadline: only weekends were counted there."""
    acknowledged_by: str | None = Field(default=None, max_length=64)
    acknowledged_at: datetime | None = utc_field(nullable=True)
    reported_by: str | None = Field(default=None, max_length=64)
    reported_at: datetime | None = utc_field(nullable=True)
    report: str = Field(default="", sa_type=Text)


class CaseFollowUp(SQLModel, table=True):
    """The resident asked afterwards (回访), and how satisfied they were."""

    __tablename__ = "case_follow_ups"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=36)
    at: datetime = utc_field()
    recorded_by: str = Field(max_length=64)
    method: str = Field(max_length=16)
    """visit (上门), phone (电话) or message (短信/微信)."""
    satisfaction: Satisfaction = Field(sa_type=String(24))
    resident_comment: str = Field(default="", sa_type=Text)
    note: str = Field(default="", sa_type=Text)
