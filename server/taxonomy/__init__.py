"""The editable problem taxonomy: SQL store, admin API, and publication to tablets."""

from server.taxonomy._controller import TaxonomyController
from server.taxonomy._schemas import (
    CategoryChanged,
    CategoryCreate,
    CategoryPublic,
    CategoryUpdate,
    ConcernChanged,
    ConcernCreate,
    ConcernPublic,
    ConcernUpdate,
    DepartmentPublic,
    ReloadReport,
    TaxonomyChangePublic,
    TaxonomyChangesPublic,
    TaxonomyPublic,
)
from server.taxonomy._service import TaxonomyAdmin, publish_taxonomy, taxonomy_reference_doc
from server.taxonomy._store import import_document, latest_revision, read_taxonomy

__all__ = [
    "CategoryChanged",
    "CategoryCreate",
    "CategoryPublic",
    "CategoryUpdate",
    "ConcernChanged",
    "ConcernCreate",
    "ConcernPublic",
    "ConcernUpdate",
    "DepartmentPublic",
    "ReloadReport",
    "TaxonomyAdmin",
    "TaxonomyChangePublic",
    "TaxonomyChangesPublic",
    "TaxonomyController",
    "TaxonomyPublic",
    "import_document",
    "latest_revision",
    "publish_taxonomy",
    "read_taxonomy",
    "taxonomy_reference_doc",
]
