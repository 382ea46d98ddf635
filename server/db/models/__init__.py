"""Every SQL table, imported here so that Alembic and the engine see the whole metadata."""

from server.db.models._audit import AdminAudit
from server.db.models._case import (
    CASE_STATE_LABELS,
    SEARCH_SEPARATOR,
    Case,
    CaseBase,
    CaseEvent,
    CaseSearch,
    CaseState,
    Finding,
    FindingRevision,
    new_case_id,
    search_content,
    search_scope,
)
from server.db.models._common import as_utc, utc_now
from server.db.models._counter import NumberCounter
from server.db.models._dispatch import (
    DISPATCH_STATE_LABELS,
    OPEN_DISPATCH_STATES,
    SATISFACTION_LABELS,
    CaseDispatch,
    CaseFollowUp,
    DispatchState,
    Satisfaction,
)
from server.db.models._grid import GridArea
from server.db.models._merge import (
    CONFLICT_STATUS_LABELS,
    CaseLink,
    Conflict,
    ConflictKind,
    ConflictStatus,
    FeedLease,
    WorkerHeartbeat,
)
from server.db.models._sync_state import FeedCheckpoint, LocalDoc, Receipt, Refusal, RefusalArea
from server.db.models._taxonomy import TaxonomyChange, TaxonomyEntry, TaxonomyRevision
from server.db.models._user import (
    Role,
    User,
    UserBase,
    UserCreate,
    UserPublic,
    UserUpdate,
    check_department,
)

__all__ = [
    "CASE_STATE_LABELS",
    "CONFLICT_STATUS_LABELS",
    "DISPATCH_STATE_LABELS",
    "OPEN_DISPATCH_STATES",
    "SATISFACTION_LABELS",
    "SEARCH_SEPARATOR",
    "AdminAudit",
    "Case",
    "CaseBase",
    "CaseDispatch",
    "CaseEvent",
    "CaseFollowUp",
    "CaseLink",
    "CaseSearch",
    "CaseState",
    "Conflict",
    "ConflictKind",
    "ConflictStatus",
    "DispatchState",
    "FeedCheckpoint",
    "FeedLease",
    "Finding",
    "FindingRevision",
    "GridArea",
    "LocalDoc",
    "NumberCounter",
    "Receipt",
    "Refusal",
    "RefusalArea",
    "Role",
    "Satisfaction",
    "TaxonomyChange",
    "TaxonomyEntry",
    "TaxonomyRevision",
    "User",
    "UserBase",
    "UserCreate",
    "UserPublic",
    "UserUpdate",
    "WorkerHeartbeat",
    "as_utc",
    "check_department",
    "new_case_id",
    "search_content",
    "search_scope",
    "utc_now",
]
