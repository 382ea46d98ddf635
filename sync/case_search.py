"""The case list's search rows (``CaseSearch``): the merge engine writes one with each new case
and extends it as findings join (``extend_case_search``); whatever else changes a case's parts (a
revised note, a split, a merge) rebuilds the rows of the cases it touched
(``refresh_case_search``)."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import SEARCH_SEPARATOR, Case, CaseSearch, Finding, search_content, search_scope

__all__ = ["extend_case_search", "refresh_case_search"]


def _table() -> Table:
    table: Table = CaseSearch.__table__  # type: ignore[attr-defined]
    return table


async def extend_case_search(session: AsyncSession, notes: Mapping[tuple[str, str], Sequence[str]]) -> None:
    """Append notes to the rows of existing cases, keyed by (scope grid, case id): one statement.
    Repeated notes do no harm (the content is searched, never shown)."""
    params = [
        {"b_scope": scope, "b_case": case_id, "b_more": SEARCH_SEPARATOR + SEARCH_SEPARATOR.join(added)}
        for (scope, case_id), added in sorted(notes.items())
        if added
    ]
    if not params:
        return
    table = _table()
    statement = (
        update(table)
        .where(table.c.scope_grid == bindparam("b_scope"), table.c.case_id == bindparam("b_case"))
        .values(content=table.c.content + bindparam("b_more"))
    )
    await session.exec(statement, params=params)


async def refresh_case_search(session: AsyncSession, case_ids: Iterable[str]) -> None:
    """Rebuild the rows of these cases from SQL (pending changes flushed first)."""
    ids = sorted(set(case_ids))
    if not ids:
        return
    await session.flush()
    table = _table()
    query = sa_select(
        col(Case.id), col(Case.grid_code), col(Case.intake_grid), col(Case.case_no), col(Case.summary)
    ).where(col(Case.id).in_(ids))
    cases = (await session.exec(query)).all()  # type: ignore[call-overload]
    notes: dict[str, list[str]] = defaultdict(list)
    rows = await session.exec(
        select(Finding.case_id, Finding.note)
        .where(col(Finding.case_id).in_(ids))
        .order_by(col(Finding.received_at), col(Finding.doc_id))
    )
    for case_id, note in rows.all():
        if case_id is not None:
            notes[case_id].append(note)
    await session.exec(delete(table).where(table.c.case_id.in_(ids)))  # wherever its scope was
    fresh: list[dict[str, Any]] = []
    for case_id, grid_code, intake_grid, case_no, summary in cases:
        scope = search_scope(grid_code, intake_grid)
        fresh.append(
            {
                "scope_grid": scope,
                "case_id": case_id,
                "content": search_content(case_no, summary, notes[case_id]),
            }
        )
    await session.exec(insert(table), params=fresh)
