"""Which document types exist, how each is validated, and how old versions are upgraded on read.

A stored document is never rewritten: old tablets keep sending old versions for months, the
gateway accepts them as written, and whoever reads one (gateway placement, worker) calls
``upgrade`` to get the current version in memory.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from field_schema._alert import MissingPersonV1
from field_schema._documents import CaseStatusDoc, HazardV1, HazardV2
from field_schema._errors import DocumentInvalid, FieldError, field_errors
from field_schema._follow_up import FollowUpV1
from field_schema._installation import InstallationV1
from field_schema._patrol import PatrolV1
from field_schema._taxonomy import Taxonomy
from field_schema._visit import VisitV1

__all__ = [
    "DOCUMENT_TYPES",
    "EMERGENCY_TYPES",
    "SERVER_ONLY_TYPES",
    "DocType",
    "json_schema",
    "json_schemas",
    "upgrade",
    "validate_document",
]

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]
TaxonomyCheck = Callable[[Mapping[str, Any], int, Taxonomy], list[FieldError]]


@dataclass(frozen=True)
class DocType:
    name: str
    label_zh: str
    label_en: str
    versions: Mapping[int, type[BaseModel]]
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)
    """``upgrades[n]`` turns a version-n document into version n+1."""
    taxonomy_check: TaxonomyCheck | None = None
    """Checks against the editable taxonomy (codes exist), given the body and its version."""
    server_only: bool = False
    """Written by the server only; the gateway refuses it from tablets."""
    emergency: bool = False
    """Accepted from any volunteer wherever it happened (the emergency fast path)."""

    @property
    def current_version(self) -> int:
        return max(self.versions)


def _hazard_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    upgraded = {k: v for k, v in doc.items() if k not in {"lat", "lng", "accuracy", "concern"}}
    upgraded.update(
        schema_version=2,
        # The first app release used the Amap SDK, whose coordinates are GCJ-02.
        location={
            "lat": doc["lat"],
            "lon": doc["lng"],
            "datum": "gcj02",
            "accuracy_m": doc.get("accuracy", 0.0),
            "source": "unknown",
        },
        concern_code=doc["concern"],
    )
    return upgraded


def _hazard_concern(body: Mapping[str, Any], version: int, taxonomy: Taxonomy) -> list[FieldError]:
    field_name = "concern_code" if version >= 2 else "concern"
    code = body.get(field_name)
    if taxonomy.concern(str(code)) is None:
        return [FieldError(field_name, f"未知的问题代码 {code!r}", f"unknown concern code {code!r}")]
    return []


def _patrol_departments(body: Mapping[str, Any], _: int, taxonomy: Taxonomy) -> list[FieldError]:
    return [
        FieldError(f"joint_departments.{i}", f"未知的部门代码 {code!r}", f"unknown department code {code!r}")
        for i, code in enumerate(body.get("joint_departments") or [])
        if code not in taxonomy.departments
    ]


DOCUMENT_TYPES: dict[str, DocType] = {
    doc_type.name: doc_type
    for doc_type in (
        DocType("visit", "走访", "Visit", {1: VisitV1}),
        DocType(
            "hazard",
            "隐患发现",
            "Hazard finding",
            {1: HazardV1, 2: HazardV2},
            {1: _hazard_v1_to_v2},
            taxonomy_check=_hazard_concern,
        ),
        DocType("patrol", "巡查", "Patrol", {1: PatrolV1}, taxonomy_check=_patrol_departments),
        DocType("installation", "设施安装", "Installation", {1: InstallationV1}),
        DocType("follow_up", "回访", "Resident follow-up", {1: FollowUpV1}),
        DocType(
            "missing_person", "走失人员警报", "Missing-person alert", {1: MissingPersonV1}, emergency=True
        ),
        DocType("case_status", "案件状态", "Case status", {1: CaseStatusDoc}, server_only=True),
    )
}
SERVER_ONLY_TYPES = frozenset(name for name, t in DOCUMENT_TYPES.items() if t.server_only)
EMERGENCY_TYPES = frozenset(name for name, t in DOCUMENT_TYPES.items() if t.emergency)


def _doc_type(doc: Mapping[str, Any]) -> tuple[DocType, int]:
    type_name = doc.get("type")
    doc_type = DOCUMENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if doc_type is None:
        known = ", ".join(sorted(DOCUMENT_TYPES))
        raise DocumentInvalid(
            [
                FieldError(
                    "type", f"未知的文档类型 {type_name!r}", f"unknown document type {type_name!r} ({known})"
                )
            ]
        )
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in doc_type.versions:
        versions = ", ".join(str(v) for v in sorted(doc_type.versions))
        raise DocumentInvalid(
            [
                FieldError(
                    "schema_version",
                    f"不支持的版本 {version!r}（支持 {versions}）",
                    f"unsupported schema_version {version!r} (supported: {versions})",
                )
            ]
        )
    return doc_type, version


def validate_document(doc: Mapping[str, Any], taxonomy: Taxonomy | None = None) -> BaseModel:
    """Validate a document in its own version; raise ``DocumentInvalid`` with field paths.

    With a taxonomy, the codes it refers to (concerns, departments) must exist in it.
    """
    doc_type, version = _doc_type(doc)
    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    try:
        model = doc_type.versions[version].model_validate(body)
    except ValidationError as exc:
        raise DocumentInvalid(field_errors(exc)) from exc
    if taxonomy is not None and doc_type.taxonomy_check is not None:
        errors = doc_type.taxonomy_check(body, version, taxonomy)
        if errors:
            raise DocumentInvalid(errors)
    return model


def upgrade(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document in its type's current version; the stored original is never rewritten."""
    doc_type, version = _doc_type(doc)
    upgraded = dict(doc)
    while version < doc_type.current_version:
        upgraded = doc_type.upgrades[version](upgraded)
        version += 1
    return upgraded


def json_schema(doc_type: DocType, version: int) -> dict[str, Any]:
    """JSON Schema of one type and version, titled in Chinese then English."""
    schema = doc_type.versions[version].model_json_schema()
    schema["title"] = f"{doc_type.label_zh} / {doc_type.label_en}"
    schema["x-label"] = {"zh": doc_type.label_zh, "en": doc_type.label_en}
    schema["x-schema-version"] = version
    return schema


def json_schemas() -> dict[str, dict[int, dict[str, Any]]]:
    """JSON Schema of every type and version, for app teams generating forms."""
    return {
        name: {version: json_schema(doc_type, version) for version in doc_type.versions}
        for name, doc_type in DOCUMENT_TYPES.items()
    }
