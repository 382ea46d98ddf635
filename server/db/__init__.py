"""SQL storage: engine, sessions, tables and migrations."""

from server.db._engine import SessionMaker, make_engine, make_session_maker
from server.db._errors import SQL_RETRY_AFTER_S, SQL_UNAVAILABLE, SQL_UNAVAILABLE_REASON
from server.db._insert import upsert_insert

__all__ = [
    "SQL_RETRY_AFTER_S",
    "SQL_UNAVAILABLE",
    "SQL_UNAVAILABLE_REASON",
    "SessionMaker",
    "make_engine",
    "make_session_maker",
    "upsert_insert",
]
