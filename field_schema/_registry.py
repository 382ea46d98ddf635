"""Which document types exist, how each is validated, and how old versions are upgraded on read."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from field_schema._documents import CaseStatusDoc, HazardV1, HazardV2
from field_schema._taxonomy import Taxonomy

__all__ = [
    "DOCUMENT_TYPES",
    "SERVER_ONLY_TYPES",
    "DocType",
    "DocumentInvalid",
    "FieldError",
    "json_schemas",
    "upgrade",
    "validate_document",
]

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class FieldError:
    path: str
    message_zh: str
    message_en: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message_zh} / {self.message_en}"


class DocumentInvalid(ValueError):
    """A document failed validation; ``errors`` name each field path."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class DocType:
    name: str
    versions: Mapping[int, type[BaseModel]]
    upgrades: Mapping[int, Upgrade]
    """``upgrades[n]`` turns a version-n document into version n+1."""

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


DOCUMENT_TYPES: dict[str, DocType] = {
    "hazard": DocType("hazard", {1: HazardV1, 2: HazardV2}, {1: _hazard_v1_to_v2}),
    "case_status": DocType("case_status", {1: CaseStatusDoc}, {}),
}
SERVER_ONLY_TYPES = frozenset({"case_status"})

_ZH_MESSAGES = {
    "missing": "缺少必填字段",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "greater_than": "数值过小",
    "less_than": "数值过大",
    "finite_number": "必须是有限数值",
    "float_parsing": "必须是数字",
    "float_type": "必须是数字",
    "int_parsing": "必须是整数",
    "int_type": "必须是整数",
    "string_type": "必须是文本",
    "string_too_short": "不能为空",
    "string_too_long": "文本过长",
    "datetime_parsing": "时间格式不正确（应为 ISO 8601）",
    "datetime_type": "时间格式不正确（应为 ISO 8601）",
    "datetime_from_date_parsing": "时间格式不正确（应为 ISO 8601）",
    "model_type": "必须是对象",
    "dict_type": "必须是对象",
}


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "(document)"
        errors.append(FieldError(path, _ZH_MESSAGES.get(error["type"], "取值无效"), error["msg"]))
    return errors


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

    With a taxonomy, concern codes must exist in it.
    """
    doc_type, version = _doc_type(doc)
    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    try:
        model = doc_type.versions[version].model_validate(body)
    except ValidationError as exc:
        raise DocumentInvalid(_field_errors(exc)) from exc
    if taxonomy is not None:
        field = "concern_code" if version >= 2 else "concern"
        code = body.get(field)
        if doc_type.name == "hazard" and taxonomy.concern(str(code)) is None:
            raise DocumentInvalid(
                [FieldError(field, f"未知的问题代码 {code!r}", f"unknown concern code {code!r}")]
            )
    return model


def upgrade(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document in its type's current version; the stored original is never rewritten."""
    doc_type, version = _doc_type(doc)
    upgraded = dict(doc)
    while version < doc_type.current_version:
        upgraded = doc_type.upgrades[version](upgraded)
        version += 1
    return upgraded


def json_schemas() -> dict[str, dict[int, dict[str, Any]]]:
    """JSON Schema of every type and version, for app teams generating forms."""
    return {
        name: {version: model.model_json_schema() for version, model in doc_type.versions.items()}
        for name, doc_type in DOCUMENT_TYPES.items()
    }
