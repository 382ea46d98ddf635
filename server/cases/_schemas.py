"""What the case API returns (explicit output models: no ORM DTOs on SQLModel tables)."""

from datetime import datetime

from pydantic import BaseModel

__all__ = ["CasePublic", "CasesPublic", "FindingPublic", "PhotoLink"]


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
    findings: list[FindingPublic]


class CasesPublic(BaseModel):
    data: list[CasePublic]
    count: int
    next_cursor: str | None
