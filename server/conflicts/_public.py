"""One conflict model and builder for ``/api/conflicts`` and the case detail (no twin)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from server.db.models import CONFLICT_STATUS_LABELS, Conflict, ConflictStatus
from server.localtime import to_local

__all__ = ["ConflictPublic", "ConflictsPublic", "conflict_public"]

_RESOLUTION_PENDING = ("网格长裁决待写回", "The grid leader's resolution is being written back")


class ConflictPublic(BaseModel):
    id: int
    doc_id: str
    case_id: str | None
    grid_code: str | None
    kind: str
    status: str
    """open, merge_pending (an automatic merge or a leader's resolution, not yet confirmed in
    CouchDB), merged, resolved or superseded."""
    status_label_zh: str
    status_label_en: str
    fields: list[str]
    winner_rev: str
    ancestor_rev: str | None
    ancestor: dict[str, Any] | None
    branches: list[dict[str, Any]]
    """Side by side: each leaf's rev, author, device, changed fields and body (photos listed)."""
    merge_rev: str | None
    """The revision of the merge or resolution, known before it is written."""
    resolution: dict[str, Any] | None
    """The leader's decision: by, choose (a whole branch) or fields (field → branch), reason."""
    attempts: int
    """Times CouchDB refused the automatic merge's write (an unreachable CouchDB does not count)."""
    last_error: str | None
    """Why the last try did not settle the merge (it is tried again)."""
    result_rev: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class ConflictsPublic(BaseModel):
    data: list[ConflictPublic]
    count: int


def conflict_public(conflict: Conflict, zone: str) -> ConflictPublic:
    """Times as people read them (local, with offset), like every other case time."""
    assert conflict.id is not None
    label_zh, label_en = CONFLICT_STATUS_LABELS.get(conflict.status, (conflict.status, conflict.status))
    if conflict.status == ConflictStatus.MERGE_PENDING and conflict.resolution is not None:
        label_zh, label_en = _RESOLUTION_PENDING
    return ConflictPublic(
        id=conflict.id,
        doc_id=conflict.doc_id,
        case_id=conflict.case_id,
        grid_code=conflict.grid_code,
        kind=conflict.kind,
        status=conflict.status,
        status_label_zh=label_zh,
        status_label_en=label_en,
        fields=list(conflict.fields),
        winner_rev=conflict.winner_rev,
        ancestor_rev=conflict.ancestor_rev,
        ancestor=conflict.ancestor,
        branches=list(conflict.branches),
        merge_rev=conflict.merge_rev,
        resolution=dict(conflict.resolution) if conflict.resolution is not None else None,
        attempts=conflict.attempts,
        last_error=conflict.last_error,
        result_rev=conflict.result_rev,
        resolved_by=conflict.resolved_by,
        resolved_at=to_local(conflict.resolved_at, zone) if conflict.resolved_at is not None else None,
        created_at=to_local(conflict.created_at, zone),
    )
