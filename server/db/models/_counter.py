"""Counters that hand out human-readable numbers (case numbers), one row per scope."""

from sqlmodel import Field, SQLModel

__all__ = ["NumberCounter"]


class NumberCounter(SQLModel, table=True):
    """The last number given out in one scope, e.g. ``ZR01-20261125`` for the cases a grid opened
    that day (local date). Incremented by an upsert, so concurrent workers never share a number."""

    __tablename__ = "number_counters"

    scope: str = Field(primary_key=True, max_length=64)
    last: int = 0
