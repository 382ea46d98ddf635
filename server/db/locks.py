"""The one order in which transactions lock findings and their cases.

Every transaction that changes findings and the cases they belong to locks the findings first, in
``doc_id`` order, and the case rows after: a worker's page, a grid leader's split or merge, a
case's step. So two of them never wait on each other in a cycle, and a page that records what
happened to a finding (a new revision, a conflict) reads the finding after a leader's move of it
has committed, or the move waits until the page has (PostgreSQL, READ COMMITTED).

SQLite renders no ``FOR UPDATE``: there a transaction's first write takes the single write lock and
writers run one after another anyway.
"""

from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import Finding

__all__ = ["lock_findings", "lock_findings_by_id"]

_CHUNK = 500


async def lock_findings(session: AsyncSession, where: ColumnElement[bool]) -> list[Finding]:
    """The findings matching ``where``, read afresh and locked until the transaction ends."""
    rows = await session.exec(
        select(Finding)
        .where(where)
        .order_by(col(Finding.doc_id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def lock_findings_by_id(session: AsyncSession, doc_ids: Sequence[str]) -> dict[str, Finding]:
    """The findings of ``doc_ids`` that exist, locked in ``doc_id`` order (in chunks, for long pages)."""
    ids = sorted(set(doc_ids))
    found: dict[str, Finding] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = await lock_findings(session, col(Finding.doc_id).in_(ids[start : start + _CHUNK]))
        found.update((finding.doc_id, finding) for finding in chunk)
    return found
