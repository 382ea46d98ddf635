"""What the merge engine records beside cases: why a finding is in its case, document conflicts,
which worker holds which feed, and how each worker is doing."""

from datetime import datetime

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = [
    "CONFLICT_STATUS_LABELS",
    "CaseLink",
    "Conflict",
    "ConflictKind",
    "ConflictStatus",
    "FeedLease",
    "WorkerHeartbeat",
]


class CaseLink(SQLModel, table=True):
    """One placement of a finding in a case, with its evidence; append-only history.

    ``kind`` is ``created`` (the finding opened the case), ``joined`` (matched an open case),
    ``split`` (a leader moved it to a new case) or ``merged`` (a leader merged its case into
    another). The newest link of a finding says where it is now (``Finding.case_id`` agrees).

    No index: nothing reads these rows by finding or case yet (the case's events carry the same
    evidence for the audit trail), and each index would cost every merged finding an entry. A
    reader of this history should add the index its query needs.
    """

    __tablename__ = "case_links"

    id: int | None = Field(default=None, primary_key=True)
    finding_id: str = Field(max_length=200)
    case_id: str = Field(max_length=36)
    kind: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    author: str = Field(max_length=64)
    """Who wrote the finding."""
    matched_finding: str | None = Field(default=None, max_length=200)
    """For a join: the finding of the case that this one was found close to."""
    matched_author: str | None = Field(default=None, max_length=64)
    distance_m: float | None = None
    gap_s: float | None = None
    """Seconds between the two findings' server receive times (never device clocks)."""
    radius_m: float | None = None
    window_h: float | None = None
    at: datetime = utc_field()


class ConflictKind:
    SOFT = "soft"
    HARD = "hard"


class ConflictStatus:
    OPEN = "open"
    """A hard conflict waiting for a leader."""
    MERGE_PENDING = "merge_pending"
    """A soft conflict recorded with the page that found it, or a leader's resolution: its merge
    is still to be written to CouchDB (or written, but not yet confirmed here): the outbox of
    ``sync/merge_outbox.py``."""
    MERGED = "merged"
    """A soft conflict merged automatically, its merge confirmed in CouchDB."""
    RESOLVED = "resolved"
    """A hard conflict resolved by a leader."""
    SUPERSEDED = "superseded"
    """Settled outside gridpatrol (the other branch deleted on a tablet or in CouchDB)."""


CONFLICT_STATUS_LABELS: dict[str, tuple[str, str]] = {
    ConflictStatus.OPEN: ("待网格长裁决", "Waiting for the grid leader"),
    ConflictStatus.MERGE_PENDING: ("自动合并待写回", "Automatic merge pending"),
    ConflictStatus.MERGED: ("已自动合并", "Merged automatically"),
    ConflictStatus.RESOLVED: ("网格长已裁决", "Resolved by the grid leader"),
    ConflictStatus.SUPERSEDED: ("已在别处解决", "Settled elsewhere"),
}


class Conflict(SQLModel, table=True):
    """Two or more branches of one document edited offline on different tablets."""

    __tablename__ = "conflicts"
    __table_args__ = (UniqueConstraint("doc_id", "leaves_key", name="uq_conflict_leaves"),)

    id: int | None = Field(default=None, primary_key=True)
    doc_id: str = Field(max_length=200, index=True)
    source_db: str = Field(max_length=200)
    case_id: str | None = Field(default=None, max_length=36, index=True)
    grid_code: str | None = Field(default=None, max_length=32, index=True)
    kind: str = Field(max_length=8)
    status: str = Field(max_length=16, index=True)
    winner_rev: str = Field(max_length=200)
    leaves_key: str = Field(max_length=400)
    """The sorted leaf revisions joined by spaces: one row per distinct set of branches."""
    ancestor_rev: str | None = Field(default=None, max_length=200)
    fields: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Fields changed on more than one branch (hard) or on any branch (soft)."""
    branches: list[dict[str, object]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Each leaf: rev, author/device, the body (without attachments data)."""
    ancestor: dict[str, object] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    result_rev: str | None = Field(default=None, max_length=200)
    merge_rev: str | None = Field(default=None, max_length=200)
    """A soft merge's revision, chosen before it is written (its id follows from what it merges):
    whether the write landed is one ``_revs_diff`` away."""
    resolution: dict[str, object] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """A grid leader's decision (``by``, ``choose`` or ``fields``, ``reason``), recorded before it
    is written to CouchDB (``merge_pending``) so that it survives the request that made it: a
    worker writes it if that request could not. Its revisions are rebuilt from the immutable
    leaves, so no photo data is kept here."""
    claimed_by: str | None = Field(default=None, max_length=100)
    """Who writes a pending merge now, until ``claimed_until`` (a worker, or the API request of a
    leader's resolution): one writer at a time."""
    claimed_until: datetime | None = utc_field(nullable=True)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """Times CouchDB refused a pending merge's write (or the write is in flight); after
    ``MAX_MERGE_ATTEMPTS`` it waits for a leader. A CouchDB that is away only delays it."""
    last_error: str | None = Field(default=None, sa_type=Text)
    resolved_by: str | None = Field(default=None, max_length=64)
    resolved_at: datetime | None = utc_field(nullable=True)
    created_at: datetime = utc_field()


class FeedLease(SQLModel, table=True):
    """Which worker follows which feed until when: several workers share feeds without overlap."""

    __tablename__ = "feed_leases"

    source_db: str = Field(primary_key=True, max_length=200)
    holder: str = Field(max_length=100)
    expires_at: datetime = utc_field()


class WorkerHeartbeat(SQLModel, table=True):
    """Each worker's last pass: shown by ``/health/worker``."""

    __tablename__ = "worker_heartbeats"

    worker_id: str = Field(primary_key=True, max_length=100)
    healthy: bool = True
    last_error: str | None = Field(default=None, sa_type=Text)
    consecutive_errors: int = 0
    last_ok_at: datetime | None = utc_field(nullable=True)
    beat_at: datetime = utc_field()
