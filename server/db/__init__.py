"""SQL storage: engine, sessions, tables and migrations."""

from server.db._engine import SessionMaker, make_engine, make_session_maker
from server.db._insert import upsert_insert

__all__ = ["SessionMaker", "make_engine", "make_session_maker", "upsert_insert"]
