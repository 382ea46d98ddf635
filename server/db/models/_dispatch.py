"""Dispatches of a case to departments (吹哨报到) and resident follow-ups (回访).

Both are written once and then only move forward (a dispatch is acknowledged, then reported, or
cancelled by the leader before it is reported); nothing here is ever deleted, and every change
also leaves a ``CaseEvent``.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Index, String, Text
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = [
    "DISPATCH_STATE_LABELS",
    "OPEN_DISPATCH_STATES",
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
    CANCELLED = "cancelled"
    """The leader withdrew it before a report (wrong department, or reassigned to another)."""


OPEN_DISPATCH_STATES = (DispatchState.DISPATCHED, DispatchState.ACKNOWLEDGED)
"""Dispatches a department still has to answer: their deadlines make a case overdue."""

DISPATCH_STATE_LABELS: dict[DispatchState, tuple[str, str]] = {
    DispatchState.DISPATCHED: ("已派单", "Dispatched"),
    DispatchState.ACKNOWLEDGED: ("已签收", "Acknowledged"),
    DispatchState.REPORTED: ("已反馈", "Reported"),
    DispatchState.CANCELLED: ("已撤销", "Cancelled"),
}


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
        # A department's cases: its dispatches that are not cancelled, answered from the index.
        Index("ix_case_dispatches_department_case", "department_code", "case_id", "state"),
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
    cancelled_by: str | None = Field(default=None, max_length=64)
    cancelled_at: datetime | None = utc_field(nullable=True)
    cancel_reason: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": ""})
    reassigned_to: int | None = None
    """The dispatch that replaced this one when the leader reassigned it to another department."""
    reassigned_from: int | None = None
    """The dispatch this one replaced."""


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
