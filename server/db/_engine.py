"""The asyncio SQL engine (SQLite by default, PostgreSQL in production) and its sessions."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.settings import DatabaseSettings

__all__ = ["SessionMaker", "make_engine", "make_session_maker"]

SessionMaker = async_sessionmaker[AsyncSession]
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_SQLITE_CACHE_KIB = 16 * 1024
"""Page cache per connection (SQLite's default is 2 MiB): a worker merging into 100,000 cases
otherwise re-reads index pages from the OS about a million times per 100,000 findings."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the gateway read while the worker writes; busy_timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before it returns, power loss included (NORMAL survives a crash of
    # the process but may lose the last commits to a power cut: a leader's answered transition, or
    # a merged page whose case numbers tablets were already shown and would be handed out again).
    # In WAL mode that is one fsync of the log per transaction: per page of findings, per request.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    cursor.close()


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(settings.async_url, echo=settings.echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        settings.async_url, echo=settings.echo, pool_size=10, max_overflow=20, pool_pre_ping=True
    )


def make_session_maker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
