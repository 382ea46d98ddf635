"""What the taxonomy admin API takes and returns (explicit models, no ORM DTOs)."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from field_schema import CATEGORY_CODE_PATTERN, CONCERN_CODE_PATTERN, DEPARTMENT_CODE_PATTERN, Severity

__all__ = [
    "CategoryChanged",
    "CategoryCreate",
    "CategoryPublic",
    "CategoryUpdate",
    "ConcernChanged",
    "ConcernCreate",
    "ConcernPublic",
    "ConcernUpdate",
    "DepartmentChanged",
    "DepartmentCreate",
    "DepartmentPublic",
    "DepartmentUpdate",
    "ReloadReport",
    "TaxonomyChangePublic",
    "TaxonomyChangesPublic",
    "TaxonomyPublic",
]

Name = Annotated[str, Field(min_length=1, max_length=100)]
Deadline = Annotated[int, Field(ge=1, le=60)]
Radius = Annotated[float, Field(gt=0, le=5000)]
Departments = Annotated[list[str], Field(min_length=1, max_length=10)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DepartmentPublic(BaseModel):
    code: str
    name_zh: str
    name_en: str
    retired: bool


class DepartmentCreate(_Input):
    code: Annotated[str, Field(pattern=DEPARTMENT_CODE_PATTERN)]
    """Stable code used by dispatches and department accounts (e.g. ``police``); never reused."""
    name_zh: Name
    name_en: Name


class DepartmentUpdate(_Input):
    name_zh: Name | None = None
    name_en: Name | None = None
    retired: bool | None = None
    """A retired department gets no new dispatches; its old ones stay on their cases."""


class DepartmentChanged(BaseModel):
    department: DepartmentPublic
    revision: int
    published: bool


class CategoryPublic(BaseModel):
    code: str
    name_zh: str
    name_en: str
    retired: bool


class CategoryCreate(_Input):
    code: Annotated[str | None, Field(pattern=CATEGORY_CODE_PATTERN)] = None
    """Leave empty to get the next unused code."""
    name_zh: Name
    name_en: Name


class CategoryUpdate(_Input):
    name_zh: Name | None = None
    name_en: Name | None = None
    retired: bool | None = None


class ConcernPublic(BaseModel):
    code: str
    category: str
    name_zh: str
    name_en: str
    default_severity: Severity
    deadline_working_days: int
    departments: list[str]
    radius_m: float
    retired: bool


class ConcernCreate(_Input):
    code: Annotated[str | None, Field(pattern=CONCERN_CODE_PATTERN)] = None
    """Leave empty to get the next unused code of the category."""
    category: Annotated[str, Field(pattern=CATEGORY_CODE_PATTERN)]
    name_zh: Name
    name_en: Name
    default_severity: Severity
    deadline_working_days: Deadline
    departments: Departments
    radius_m: Radius


class ConcernUpdate(_Input):
    """All optional; only the fields sent change. The category is part of the code and stays."""

    name_zh: Name | None = None
    name_en: Name | None = None
    default_severity: Severity | None = None
    deadline_working_days: Deadline | None = None
    departments: Departments | None = None
    radius_m: Radius | None = None
    retired: bool | None = None


class TaxonomyPublic(BaseModel):
    revision: int
    categories: list[CategoryPublic]
    concerns: list[ConcernPublic]
    departments: list[DepartmentPublic]


class CategoryChanged(BaseModel):
    category: CategoryPublic
    revision: int
    published: bool
    """False when CouchDB could not take the new reference document (retry with POST /reload)."""


class ConcernChanged(BaseModel):
    concern: ConcernPublic
    revision: int
    published: bool


class TaxonomyChangePublic(BaseModel):
    revision: int
    kind: str
    code: str
    action: str
    actor: str
    source: str
    at: datetime
    """Local time (Asia/Shanghai by default)."""
    before: dict[str, Any] | None
    after: dict[str, Any]


class TaxonomyChangesPublic(BaseModel):
    data: list[TaxonomyChangePublic]
    count: int


class ReloadReport(BaseModel):
    revision: int
    changes: list[TaxonomyChangePublic]
    published: bool
