"""``INSERT ... ON CONFLICT`` for the SQL backends we run on."""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["upsert_insert"]


def upsert_insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of ``dialect`` (``sqlite`` or ``postgresql``) that offers ``on_conflict_do_nothing``
    and ``on_conflict_do_update``: both dialects spell them the same way, each with its own class."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table)
