"""The problem taxonomy: categories, concerns and departments, as editable data with stable codes."""

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TAXONOMY_FILE", "Concern", "Severity", "Taxonomy", "TaxonomyError", "load_taxonomy"]

DEFAULT_TAXONOMY_FILE = Path(__file__).parent / "data" / "taxonomy.json"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class TaxonomyError(ValueError):
    """The taxonomy file is inconsistent."""


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


@dataclass(frozen=True)
class Taxonomy:
    version: int
    categories: dict[str, dict[str, str]]
    concerns: dict[str, Concern]
    departments: dict[str, dict[str, str]]
    raw: dict[str, Any]

    def concern(self, code: str) -> Concern | None:
        return self.concerns.get(code)


def load_taxonomy(source: Path | dict[str, Any] = DEFAULT_TAXONOMY_FILE) -> Taxonomy:
    data: dict[str, Any] = (
        json.loads(source.read_text(encoding="utf-8")) if isinstance(source, Path) else source
    )
    categories = {c["code"]: c for c in data["categories"]}
    departments = {d["code"]: d for d in data["departments"]}
    concerns: dict[str, Concern] = {}
    for item in data["concerns"]:
        code = item["code"]
        if code in concerns:
            raise TaxonomyError(f"concern code {code} appears twice")
        if item["category"] not in categories:
            raise TaxonomyError(f"concern {code}: unknown category {item['category']}")
        unknown = [d for d in item["departments"] if d not in departments]
        if unknown:
            raise TaxonomyError(f"concern {code}: unknown departments {unknown}")
        concerns[code] = Concern(
            code=code,
            category=item["category"],
            name_zh=item["name_zh"],
            name_en=item["name_en"],
            default_severity=Severity(item["default_severity"]),
            deadline_working_days=int(item["deadline_working_days"]),
            departments=tuple(item["departments"]),
            radius_m=float(item["radius_m"]),
        )
    return Taxonomy(
        version=int(data.get("version", 1)),
        categories=categories,
        concerns=concerns,
        departments=departments,
        raw=data,
    )
