"""The problem taxonomy: categories, concerns and departments, as editable data with stable codes.

Codes follow GB/T 30428's shape (major category + sequence): category ``04``, concern ``04-07``.
A code is never reused: an entry that is no longer wanted is *retired* (kept, flagged), so old
documents and cases that carry it still resolve, and nobody can give the code a new meaning.
Retired concerns still validate: a tablet offline for days may send a finding made before the
retirement, and refusing it would lose it (PouchDB never re-sends a refused document).
"""

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from field_schema._errors import FieldError, field_errors, rule_error

__all__ = [
    "CATEGORY_CODE_PATTERN",
    "CONCERN_CODE_PATTERN",
    "DEFAULT_JOIN_WINDOW_H",
    "DEFAULT_TAXONOMY_FILE",
    "DEPARTMENT_CODE_PATTERN",
    "Category",
    "CategoryEntry",
    "Concern",
    "ConcernEntry",
    "Department",
    "DepartmentEntry",
    "Severity",
    "Taxonomy",
    "TaxonomyDocument",
    "TaxonomyError",
    "load_taxonomy",
    "next_category_code",
    "next_concern_code",
]

DEFAULT_TAXONOMY_FILE = Path(__file__).parent / "data" / "taxonomy.json"
CATEGORY_CODE_PATTERN = r"^[0-9]{2}$"
CONCERN_CODE_PATTERN = r"^[0-9]{2}-[0-9]{2,3}$"
DEPARTMENT_CODE_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"
Name = Annotated[str, Field(min_length=1, max_length=100)]
DEFAULT_JOIN_WINDOW_H = 72.0
"""Default join window: a problem seen again within three days is probably the same problem."""


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class TaxonomyError(ValueError):
    """The taxonomy is inconsistent; ``errors`` name each place (``concerns.3.category``...)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class _Entry(BaseModel):
    # A hand-edited file: a misspelt key must be an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    name_zh: Name
    name_en: Name
    retired: bool = False


class DepartmentEntry(_Entry):
    code: Annotated[str, Field(pattern=DEPARTMENT_CODE_PATTERN)]


class CategoryEntry(_Entry):
    code: Annotated[str, Field(pattern=CATEGORY_CODE_PATTERN)]


class ConcernEntry(_Entry):
    code: Annotated[str, Field(pattern=CONCERN_CODE_PATTERN)]
    category: str
    default_severity: Severity
    deadline_working_days: Annotated[int, Field(ge=1, le=60)]
    departments: Annotated[list[str], Field(min_length=1, max_length=10)]
    radius_m: Annotated[float, Field(gt=0, le=5000)]
    """Two findings of this concern closer than this are likely the same problem."""
    join_window_h: Annotated[float, Field(gt=0, le=24 * 365)] = DEFAULT_JOIN_WINDOW_H
    """...and received by the server at most this many hours apart (optional in the file)."""


class TaxonomyDocument(BaseModel):
    """The taxonomy file's format, and what the reference database publishes to tablets."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    """Format version of this document."""
    revision: int = 0
    """How many edits the server has recorded (0 for a file that was never edited through the API)."""
    note: str = ""
    departments: list[DepartmentEntry]
    categories: list[CategoryEntry]
    concerns: list[ConcernEntry]

    @model_validator(mode="after")
    def _consistent(self) -> "TaxonomyDocument":
        for kind in ("departments", "categories", "concerns"):
            seen: set[str] = set()
            for index, entry in enumerate(getattr(self, kind)):
                if entry.code in seen:
                    raise rule_error(
                        f"{kind}.{index}.code", f"代码 {entry.code} 重复", f"code {entry.code} twice"
                    )
                seen.add(entry.code)
        categories = {c.code: c for c in self.categories}
        departments = {d.code: d for d in self.departments}
        for index, concern in enumerate(self.concerns):
            where = f"concerns.{index}"
            category = categories.get(concern.category)
            if category is None:
                raise rule_error(
                    f"{where}.category",
                    f"{concern.code}：大类 {concern.category} 不存在",
                    f"{concern.code}: unknown category {concern.category}",
                )
            if not concern.code.startswith(concern.category + "-"):
                raise rule_error(
                    f"{where}.code",
                    f"{concern.code}：代码应以所属大类 {concern.category}- 开头",
                    f"{concern.code}: code must start with its category {concern.category}-",
                )
            unknown = [d for d in concern.departments if d not in departments]
            if unknown:
                raise rule_error(
                    f"{where}.departments",
                    f"{concern.code}：部门 {', '.join(unknown)} 不存在",
                    f"{concern.code}: unknown departments {', '.join(unknown)}",
                )
            if not concern.retired and category.retired:
                raise rule_error(
                    f"{where}.retired",
                    f"{concern.code}：所属大类 {category.code} 已停用",
                    f"{concern.code}: its category {category.code} is retired",
                )
        return self


@dataclass(frozen=True)
class Department:
    code: str
    name_zh: str
    name_en: str
    retired: bool = False


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    retired: bool = False


@dataclass(frozen=True)
class Concern:
    code: str
    category: str
    name_zh: str
    name_en: str
    default_severity: Severity
    deadline_working_days: int
    departments: tuple[str, ...]
    radius_m: float
    retired: bool = False
    join_window_h: float = DEFAULT_JOIN_WINDOW_H


@dataclass(frozen=True)
class Taxonomy:
    version: int
    categories: dict[str, Category]
    concerns: dict[str, Concern]
    departments: dict[str, Department]
    raw: dict[str, Any] = field(repr=False)
    """The whole taxonomy as a ``TaxonomyDocument`` in JSON form (what tablets pull)."""
    revision: int = 0

    def concern(self, code: str) -> Concern | None:
        """Any known concern, retired ones included (old findings still carry them)."""
        return self.concerns.get(code)

    def active_concerns(self) -> list[Concern]:
        return [c for c in self.concerns.values() if not c.retired]

    def document(self) -> TaxonomyDocument:
        return TaxonomyDocument.model_validate(self.raw)

    @classmethod
    def of(cls, document: TaxonomyDocument) -> "Taxonomy":
        return cls(
            version=document.version,
            revision=document.revision,
            categories={
                c.code: Category(c.code, c.name_zh, c.name_en, c.retired) for c in document.categories
            },
            departments={
                d.code: Department(d.code, d.name_zh, d.name_en, d.retired) for d in document.departments
            },
            concerns={
                c.code: Concern(
                    code=c.code,
                    category=c.category,
                    name_zh=c.name_zh,
                    name_en=c.name_en,
                    default_severity=c.default_severity,
                    deadline_working_days=c.deadline_working_days,
                    departments=tuple(c.departments),
                    radius_m=c.radius_m,
                    retired=c.retired,
                    join_window_h=c.join_window_h,
                )
                for c in document.concerns
            },
            raw=document.model_dump(mode="json"),
        )


def load_taxonomy(source: Path | dict[str, Any] | TaxonomyDocument = DEFAULT_TAXONOMY_FILE) -> Taxonomy:
    """Read and check a taxonomy (file, parsed JSON or document); ``TaxonomyError`` names each problem."""
    if isinstance(source, TaxonomyDocument):
        return Taxonomy.of(source)
    try:
        data = json.loads(source.read_text(encoding="utf-8")) if isinstance(source, Path) else source
        return Taxonomy.of(TaxonomyDocument.model_validate(data))
    except json.JSONDecodeError as exc:
        raise TaxonomyError(
            [FieldError(f"line {exc.lineno}", f"JSON 格式错误：{exc.msg}", f"invalid JSON: {exc.msg}")]
        ) from exc
    except ValidationError as exc:
        raise TaxonomyError(field_errors(exc)) from exc


def next_category_code(used: set[str]) -> str:
    """The next two-digit category code never used before (retired codes count as used)."""
    numbers = [int(code) for code in used if code.isdigit()]
    candidate = max(numbers, default=0) + 1
    if candidate > 99:
        raise TaxonomyError([FieldError("code", "大类代码已用完", "no category code left")])
    return f"{candidate:02d}"


def next_concern_code(used: set[str], category: str) -> str:
    """The next ``<category>-NN`` code never used before in that category (retired ones count)."""
    prefix = category + "-"
    numbers = [
        int(code[len(prefix) :]) for code in used if code.startswith(prefix) and code[len(prefix) :].isdigit()
    ]
    candidate = max(numbers, default=0) + 1
    if candidate > 999:
        raise TaxonomyError(
            [FieldError("code", "该大类的问题代码已用完", "no concern code left in this category")]
        )
    return f"{prefix}{candidate:02d}"
