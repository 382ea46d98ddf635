"""The document types tablets write: versions, validation, upgrades, taxonomy and photo checks."""

from field_schema._alert import MissingPersonV1
from field_schema._documents import CaseStatusDoc, Envelope, HazardV1, HazardV2, Location, LocationSource
from field_schema._errors import DocumentInvalid, FieldError
from field_schema._follow_up import FollowUpV1
from field_schema._installation import InstallationV1
from field_schema._patrol import PatrolV1, PlaceChecked, TrackPoint
from field_schema._photos import ALLOWED_PHOTO_TYPES, sniff_image_type
from field_schema._registry import (
    DOCUMENT_TYPES,
    EMERGENCY_TYPES,
    SERVER_ONLY_TYPES,
    DocType,
    json_schema,
    json_schemas,
    upgrade,
    validate_document,
)
from field_schema._taxonomy import (
    CATEGORY_CODE_PATTERN,
    CONCERN_CODE_PATTERN,
    DEFAULT_TAXONOMY_FILE,
    DEPARTMENT_CODE_PATTERN,
    Category,
    CategoryEntry,
    Concern,
    ConcernEntry,
    Department,
    DepartmentEntry,
    Severity,
    Taxonomy,
    TaxonomyDocument,
    TaxonomyError,
    load_taxonomy,
    next_category_code,
    next_concern_code,
)
from field_schema._urgency import is_urgent
from field_schema._visit import VisitV1

__all__ = [
    "ALLOWED_PHOTO_TYPES",
    "CATEGORY_CODE_PATTERN",
    "CONCERN_CODE_PATTERN",
    "DEFAULT_TAXONOMY_FILE",
    "DEPARTMENT_CODE_PATTERN",
    "DOCUMENT_TYPES",
    "EMERGENCY_TYPES",
    "SERVER_ONLY_TYPES",
    "CaseStatusDoc",
    "Category",
    "CategoryEntry",
    "Concern",
    "ConcernEntry",
    "Department",
    "DepartmentEntry",
    "DocType",
    "DocumentInvalid",
    "Envelope",
    "FieldError",
    "FollowUpV1",
    "HazardV1",
    "HazardV2",
    "InstallationV1",
    "Location",
    "LocationSource",
    "MissingPersonV1",
    "PatrolV1",
    "PlaceChecked",
    "Severity",
    "Taxonomy",
    "TaxonomyDocument",
    "TaxonomyError",
    "TrackPoint",
    "VisitV1",
    "is_urgent",
    "json_schema",
    "json_schemas",
    "load_taxonomy",
    "next_category_code",
    "next_concern_code",
    "sniff_image_type",
    "upgrade",
    "validate_document",
]
