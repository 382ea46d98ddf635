"""Case numbers people can read out on the phone: ``<grid>-<local date>-<NNNN>``.

Numbers come from a counter row per (grid, local day), moved by one upsert that returns the new
value, so two workers (or a worker and a leader splitting a case) never get the same number. The
row stays locked until the caller's transaction ends, which is what makes it safe on PostgreSQL.
"""

from datetime import datetime

from sqlalchemy import Insert
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import upsert_insert
from server.db.models import NumberCounter, utc_now
from server.localtime import to_local

__all__ = ["allocate_case_numbers"]

UNASSIGNED = "UNASSIGNED"


def _upsert(dialect: str, scope: str, count: int) -> Insert:
    table = NumberCounter.__table__  # type: ignore[attr-defined]
    statement = upsert_insert(dialect, table).values(scope=scope, last=count)
    return statement.on_conflict_do_update(
        index_elements=["scope"], set_={"last": table.c.last + count}
    ).returning(table.c.last)


async def allocate_case_numbers(
    session: AsyncSession,
    grid: str | None,
    count: int = 1,
    *,
    zone: str = "Asia/Shanghai",
    now: datetime | None = None,
) -> list[str]:
    """``count`` consecutive new case numbers for cases opened now in ``grid``."""
    day = to_local(now or utc_now(), zone).strftime("%Y%m%d")
    prefix = f"{grid or UNASSIGNED}-{day}"
    dialect = session.sync_session.get_bind().dialect.name
    result = await session.exec(_upsert(dialect, prefix, count))
    last = int(result.scalar_one())
    return [f"{prefix}-{number:04d}" for number in range(last - count + 1, last + 1)]
