"""The document types tablets write: versions, validation, upgrades, taxonomy and photo checks."""

from field_schema._documents import CaseStatusDoc, Envelope, HazardV1, HazardV2, Location, LocationSource
from field_schema._photos import ALLOWED_PHOTO_TYPES, sniff_image_type
from field_schema._registry import (
    DOCUMENT_TYPES,
    SERVER_ONLY_TYPES,
    DocType,
    DocumentInvalid,
    FieldError,
    json_schemas,
    upgrade,
    validate_document,
)
from field_schema._taxonomy import (
    DEFAULT_TAXONOMY_FILE,
    Concern,
    Severity,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
)

__all__ = [
    "ALLOWED_PHOTO_TYPES",
    "DEFAULT_TAXONOMY_FILE",
    "DOCUMENT_TYPES",
    "SERVER_ONLY_TYPES",
    "CaseStatusDoc",
    "Concern",
    "DocType",
    "DocumentInvalid",
    "Envelope",
    "FieldError",
    "HazardV1",
    "HazardV2",
    "Location",
    "LocationSource",
    "Severity",
    "Taxonomy",
    "TaxonomyError",
    "json_schemas",
    "load_taxonomy",
    "sniff_image_type",
    "upgrade",
    "validate_document",
]
