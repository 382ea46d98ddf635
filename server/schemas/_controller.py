"""``/api/schemas``: the JSON Schema of every field document type and version, for app teams.

Public (no sign-in): the schemas describe forms, contain no data, and are needed by build tools
and app developers who have no account; tablets also get them from the reference database.
"""

from functools import cache
from typing import Any

from litestar import Controller, get
from pydantic import BaseModel

from field_schema import DOCUMENT_TYPES, DocType, json_schema
from server.errors import ApiError

__all__ = ["DocumentTypeSchemas", "SchemaController", "SchemasPublic"]


class DocumentTypeSchemas(BaseModel):
    type: str
    label_zh: str
    label_en: str
    current_version: int
    server_only: bool
    """Written by the server; tablets only read it."""
    emergency: bool
    """Accepted from any volunteer, wherever it happened (the emergency fast path)."""
    versions: dict[str, dict[str, Any]]
    """JSON Schema per version (keys are version numbers); older versions are upgraded on read."""


class SchemasPublic(BaseModel):
    types: dict[str, DocumentTypeSchemas]


@cache
def _schemas_of(name: str) -> DocumentTypeSchemas:
    doc_type: DocType = DOCUMENT_TYPES[name]
    return DocumentTypeSchemas(
        type=name,
        label_zh=doc_type.label_zh,
        label_en=doc_type.label_en,
        current_version=doc_type.current_version,
        server_only=doc_type.server_only,
        emergency=doc_type.emergency,
        versions={str(v): json_schema(doc_type, v) for v in sorted(doc_type.versions)},
    )


def _lookup(doc_type: str) -> DocumentTypeSchemas:
    if doc_type not in DOCUMENT_TYPES:
        known = ", ".join(sorted(DOCUMENT_TYPES))
        raise ApiError.not_found(
            f"没有文档类型 {doc_type}（可选：{known}）", f"no document type {doc_type} ({known})"
        )
    return _schemas_of(doc_type)


class SchemaController(Controller):
    path = "/api/schemas"
    tags = ["schemas"]

    @get("/", summary="JSON Schemas of every document type and version (public)")
    async def list_schemas(self) -> SchemasPublic:
        return SchemasPublic(types={name: _schemas_of(name) for name in DOCUMENT_TYPES})

    @get("/{doc_type:str}", summary="JSON Schemas of one document type (public)")
    async def get_schemas(self, doc_type: str) -> DocumentTypeSchemas:
        return _lookup(doc_type)

    @get("/{doc_type:str}/{version:int}", summary="JSON Schema of one document type and version (public)")
    async def get_schema(self, doc_type: str, version: int) -> dict[str, Any]:
        schemas = _lookup(doc_type)
        if str(version) not in schemas.versions:
            raise ApiError.not_found(
                f"{doc_type} 没有版本 {version}", f"{doc_type} has no schema_version {version}"
            )
        return schemas.versions[str(version)]
