"""The editable taxonomy in SQL: one row per department, category and concern, and the audit trail.

Rows are never deleted, so a code, once used, stays taken (retiring sets ``retired`` in ``data``).
Each change (an admin edit, or a file import) is one numbered revision; the revision's primary key
makes two concurrent edits collide instead of silently sharing a number.
"""

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = ["TaxonomyChange", "TaxonomyEntry", "TaxonomyRevision"]


class TaxonomyEntry(SQLModel, table=True):
    __tablename__ = "taxonomy_entries"

    kind: str = Field(primary_key=True, max_length=16)
    """department, category or concern."""
    code: str = Field(primary_key=True, max_length=32)
    data: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    """The entry as the taxonomy file writes it (``retired`` included)."""
    file_digest: str | None = Field(default=None, max_length=64)
    """SHA-256 of the entry as last imported from the file; None when the file does not govern it
    (added through the API, or dropped from the file)."""
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()


class TaxonomyRevision(SQLModel, table=True):
    __tablename__ = "taxonomy_revisions"

    revision: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    actor: str = Field(max_length=64)
    source: str = Field(max_length=16)
    """api or file."""
    at: datetime = utc_field()


class TaxonomyChange(SQLModel, table=True):
    __tablename__ = "taxonomy_changes"

    id: int | None = Field(default=None, primary_key=True)
    revision: int = Field(foreign_key="taxonomy_revisions.revision", index=True)
    kind: str = Field(max_length=16)
    code: str = Field(max_length=32)
    action: str = Field(max_length=16)
    """added, edited, retired or reinstated."""
    before: dict[str, object] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
