"""Admin requests to the document store, audited (who, what, result)."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = ["AdminAudit"]


class AdminAudit(SQLModel, table=True):
    """One request an admin made through the sync gateway: append-only."""

    __tablename__ = "admin_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_field(index=True)
    username: str = Field(max_length=64, index=True)
    method: str = Field(max_length=16)
    path: str = Field(max_length=2000)
    """The raw request path and query, as sent (percent-encoding kept)."""
    status: int
