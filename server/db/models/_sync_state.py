"""What the sync machinery keeps in SQL: feed checkpoints, receipts, refusals and per-user _local
documents."""

from datetime import datetime

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = ["FeedCheckpoint", "LocalDoc", "Receipt", "Refusal", "RefusalArea"]


class FeedCheckpoint(SQLModel, table=True):
    """Where the worker is in one CouchDB database's changes feed (an opaque CouchDB sequence)."""

    __tablename__ = "feed_checkpoints"

    source_db: str = Field(primary_key=True, max_length=200)
    seq: str = Field(sa_type=Text)
    updated_at: datetime = utc_field()


class Refusal(SQLModel, table=True):
    """A document the gateway refused at push, so leaders can see what did not arrive and why.

    Which leaders see it is kept apart, in ``RefusalArea`` rows: a refusal concerns every grid and
    micro-grid its author worked in and the place where the document lies, more than one column holds.
    """

    __tablename__ = "refusals"
    __table_args__ = (
        UniqueConstraint("username", "doc_id", "rev", "rule", name="uq_refusal"),
        Index("uq_refusal_fingerprint", "fingerprint", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str | None = Field(default=None, max_length=64)
    """What makes a refusal the same one when it is sent again (see ``server.refusals``). A document
    pushed without ``_rev`` has no revision to tell its retries apart, and SQL's unique constraints
    treat NULLs as distinct, so ``uq_refusal`` alone would record such a refusal on every retry."""
    username: str = Field(max_length=64, index=True)
    device_id: str | None = Field(default=None, max_length=200)
    doc_id: str = Field(max_length=200)
    rev: str | None = Field(default=None, max_length=200)
    doc_type: str | None = Field(default=None, max_length=32)
    grid_code: str | None = Field(default=None, max_length=32, index=True)
    """The grid where the document lies (its location); None when it has no usable location or lies
    outside every grid. Rows recorded before migration 0014 hold the author's first grid."""
    micro_grid_code: str | None = Field(default=None, max_length=32)
    """The micro-grid where the document lies, when its location places it in one."""
    rule: str = Field(max_length=48)
    field: str | None = Field(default=None, max_length=200)
    reason_zh: str
    reason_en: str
    created_at: datetime = utc_field(index=True)


class RefusalArea(SQLModel, table=True):
    """One grid or micro-grid whose leaders see a refusal: each one its author worked in when it was
    refused, and the grid and micro-grid where the document lies (every grid its accuracy circle
    touches near a boundary). A micro-grid is filed with its grid too, so a grid's leader finds the
    refusals of its micro-grids by the grid's code alone."""

    __tablename__ = "refusal_areas"

    refusal_id: int = Field(primary_key=True, foreign_key="refusals.id", ondelete="CASCADE")
    code: str = Field(primary_key=True, max_length=32, index=True)


class LocalDoc(SQLModel, table=True):
    """A replication checkpoint (``_local/...``) of one user on the virtual database."""

    __tablename__ = "local_docs"
    __table_args__ = (UniqueConstraint("owner", "db", "doc_id", name="uq_local_doc"),)

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=64)
    db: str = Field(max_length=200)
    doc_id: str = Field(max_length=400)
    generation: int = 0
    body: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = utc_field()


class Receipt(SQLModel, table=True):
    """When a document revision reached the sync gateway, by whom: the server's receive time.

    The worker orders and joins findings by it (never by the tablet's clock). It is stamped where
    the document arrives, not where the worker first reads it, so findings pushed days apart keep
    their distance even when the worker was down in between. The worker deletes a receipt once it
    has applied its revision.
    """

    __tablename__ = "receipts"

    doc_id: str = Field(primary_key=True, max_length=200)
    rev: str = Field(primary_key=True, max_length=200)
    received_at: datetime = utc_field()
    username: str = Field(max_length=64)
