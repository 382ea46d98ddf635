"""What the case API returns (explicit output models: no ORM DTOs on SQLModel tables)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.conflicts import ConflictPublic
from server.db.models import CaseState, Satisfaction
from server.refusals import RefusalPublic

__all__ = [
    "CaseDetailPublic",
    "CaseEventPublic",
    "CasePublic",
    "CasesPublic",
    "DispatchAcknowledge",
    "DispatchCancel",
    "DispatchCreate",
    "DispatchPublic",
    "DispatchReassign",
    "DispatchReport",
    "FindingPublic",
    "FollowUpCreate",
    "FollowUpPublic",
    "PhotoLink",
    "TransitionCreate",
]


class PhotoLink(BaseModel):
    name: str
    url: str


class FindingPublic(BaseModel):
    doc_id: str
    rev: str
    author: str
    device_id: str
    observed_at: datetime
    """Device clock, shown in local time; never used for ordering."""
    received_at: datetime
    note: str
    lat: float
    lon: float
    reported_datum: str
    accuracy_m: float
    deleted: bool
    photos: list[PhotoLink]


class CasePublic(BaseModel):
    id: str
    case_no: str
    grid_code: str | None
    grid_name_zh: str | None
    grid_name_en: str | None
    micro_grid_code: str | None
    assignment: str
    assignment_candidates: list[str]
    concern_code: str
    concern_name_zh: str | None
    concern_name_en: str | None
    severity: str
    state: str
    state_label_zh: str
    state_label_en: str
    lat: float
    lon: float
    summary: str
    created_at: datetime
    updated_at: datetime
    photo_url: str | None
    version: int
    """Send it back as ``expected_version`` when acting on the case."""
    overdue: bool
    """Some dispatch passed its deadline without a report."""
    findings: list[FindingPublic]
    dispatches: list["DispatchPublic"]


class CasesPublic(BaseModel):
    data: list[CasePublic]
    count: int
    next_cursor: str | None


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Reason = Annotated[str, Field(min_length=2, max_length=1000)]
"""Why: required on every step, kept in the audit trail."""


class TransitionCreate(_Input):
    to: CaseState
    reason: Reason
    expected_version: int | None = None
    """The case version the client last saw; a mismatch is a 409 (someone acted meanwhile)."""


class DispatchCreate(_Input):
    departments: Annotated[list[str], Field(min_length=1, max_length=10)]
    """Department codes from the taxonomy; several make a joint case (联合处置)."""
    reason: Reason
    instructions: Annotated[str, Field(max_length=2000)] = ""
    working_days: Annotated[int | None, Field(ge=1, le=60)] = None
    """Deadline in working days; the concern's ``deadline_working_days`` when omitted."""
    expected_version: int | None = None


class DispatchCancel(_Input):
    reason: Reason
    """Why the dispatch is withdrawn (wrong department, no longer needed)."""
    expected_version: int | None = None


class DispatchReassign(_Input):
    department: Annotated[str, Field(min_length=1, max_length=32)]
    """The taxonomy department that takes the dispatch over."""
    reason: Reason
    working_days: Annotated[int | None, Field(ge=1, le=60)] = None
    """Deadline from now in working days; the cancelled dispatch's allowance when omitted."""
    instructions: Annotated[str | None, Field(max_length=2000)] = None
    """The cancelled dispatch's instructions when omitted."""
    expected_version: int | None = None


class DispatchAcknowledge(_Input):
    note: Annotated[str, Field(max_length=2000)] = ""


class DispatchReport(_Input):
    report: Annotated[str, Field(min_length=2, max_length=4000)]
    """What the department did, or why it cannot act (解决或解释)."""


class FollowUpCreate(_Input):
    method: Literal["visit", "phone", "message"]
    satisfaction: Satisfaction
    resident_comment: Annotated[str, Field(max_length=2000)] = ""
    note: Annotated[str, Field(max_length=2000)] = ""
    reopen: bool = False
    """With ``dissatisfied``: send the case back (follow_up → resolving, closed → reopened)."""


class CaseEventPublic(BaseModel):
    id: int
    at: datetime
    """Server time, shown in local time (Asia/Shanghai)."""
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    reason: str
    details: dict[str, Any]


class DispatchPublic(BaseModel):
    id: int
    department_code: str
    department_name_zh: str | None
    department_name_en: str | None
    state: str
    state_label_zh: str
    state_label_en: str
    instructions: str
    working_days: int
    dispatched_by: str
    dispatched_at: datetime
    deadline_at: datetime
    deadline_provisional: bool
    overdue: bool
    """Deadline passed and neither a report nor a cancellation yet."""
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    reported_by: str | None
    reported_at: datetime | None
    report: str
    cancelled_by: str | None
    cancelled_at: datetime | None
    cancel_reason: str
    reassigned_to: int | None
    """The dispatch to another department that replaced this one."""
    reassigned_from: int | None


class FollowUpPublic(BaseModel):
    id: int
    at: datetime
    recorded_by: str
    method: str
    satisfaction: str
    satisfaction_label_zh: str
    satisfaction_label_en: str
    resident_comment: str
    note: str


class CaseDetailPublic(CasePublic):
    allowed_transitions: list[str]
    """Steps the signed-in user may take now."""
    events: list[CaseEventPublic]
    follow_ups: list[FollowUpPublic]
    refusals: list[RefusalPublic]
    """Pushes of this case's findings that the gateway refused."""
    conflicts: list[ConflictPublic]
    """Offline edits of this case's findings that clashed: open, being merged, or settled."""
