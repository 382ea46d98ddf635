"""Shared column helpers for the table modules."""

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlmodel import Field

__all__ = ["as_utc", "utc_field", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_field(*, nullable: bool = False, index: bool = False) -> datetime:
    """A timezone-aware UTC timestamp column defaulting to now."""
    return Field(  # type: ignore[no-any-return]
        default_factory=utc_now if not nullable else None,
        sa_type=DateTime(timezone=True),
        nullable=nullable,
        index=index,
    )
