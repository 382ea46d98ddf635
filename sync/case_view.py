"""What a case shows (severity, location) recomputed from its live findings after one changes.

Severity is the highest among the live findings (order of ``field_schema.Severity``): a revision
that raises one finding to urgent makes the case urgent, a withdrawal of the only urgent one lowers
it again. The location is the first live finding's (receive time, then id, the order the case lists
them in): it is a point someone actually reported, which a mean of scattered points is not, and it
is where the worker put the case when it created it.
"""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import Severity
from server.db.models import Case, Finding

__all__ = ["refresh_case_view"]

_RANK = {str(s): rank for rank, s in enumerate(Severity)}


async def refresh_case_view(session: AsyncSession, case: Case) -> None:
    """Set ``case.severity``, ``lat`` and ``lon`` from its live findings (pending changes flushed
    first); a case without live findings keeps what it showed last."""
    await session.flush()
    rows = await session.exec(
        select(Finding)
        .where(col(Finding.case_id) == case.id, col(Finding.deleted).is_(False))
        .order_by(col(Finding.received_at), col(Finding.doc_id))
    )
    live = list(rows.all())
    if not live:
        return
    case.severity = max((f.severity for f in live), key=lambda s: _RANK.get(s, -1))
    case.lat, case.lon = live[0].lat, live[0].lon
    session.add(case)
