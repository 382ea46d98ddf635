"""Which SQL errors mean "the store is away for now" rather than a bug."""

from sqlalchemy import exc

__all__ = ["SQL_RETRY_AFTER_S", "SQL_UNAVAILABLE", "SQL_UNAVAILABLE_REASON"]

# Connection refused or lost, a missing SQLite file, PostgreSQL's lock_timeout or a restart, an
# exhausted pool: a retry may succeed. Integrity and programming errors are not in here.
SQL_UNAVAILABLE: tuple[type[Exception], ...] = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)
SQL_RETRY_AFTER_S = 5
SQL_UNAVAILABLE_REASON = ("数据库暂时不可用，请稍后重试", "the database is unavailable, retry later")
"""Chinese, English."""
