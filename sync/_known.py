"""Revisions of findings the worker already knows: updated, withdrawn, or kept out (another
database's or another author's document with the same id)."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import Taxonomy
from server.db.models import Case, CaseEvent, Finding
from sync._rows import WORKER_ACTOR, Change, ChangeOutcome, bulk_insert, event_row, finding_fields
from sync.case_search import refresh_case_search
from sync.case_view import refresh_case_view

__all__ = ["refuse_clashes", "update_finding", "withdraw_finding"]


def _by_whom(finding: Finding, pushed_by: str | None) -> tuple[dict[str, str], str | None]:
    """The event's ``by`` detail, and who changed the finding when that was not its author (a grid
    leader may edit or delete any finding of their grid through sync: the case history says so)."""
    if pushed_by is None:
        return {}, None
    return {"by": pushed_by}, (pushed_by if pushed_by != finding.author else None)


async def update_finding(
    session: AsyncSession,
    finding: Finding,
    doc: Mapping[str, Any],
    rev: str,
    taxonomy: Taxonomy,
    now: datetime,
    *,
    pushed_by: str | None = None,
) -> ChangeOutcome:
    """A new revision changes what the case shows; it never moves the finding to another case.
    ``pushed_by``: who sent it through the gateway (None: unknown, say written straight to CouchDB)."""
    by, other = _by_whom(finding, pushed_by)
    fields = finding_fields(doc, taxonomy)
    for key, value in fields.items():
        setattr(finding, key, value)
    finding.rev = rev
    finding.deleted = False
    finding.status_version += 1
    session.add(finding)
    if finding.case_id is not None:
        case = await session.get(Case, finding.case_id)
        if case is not None:
            case.summary = fields["note"][:500] or case.summary
            case.updated_at = now
            await refresh_case_view(session, case)
            await refresh_case_search(session, [case.id])
            session.add(
                CaseEvent(
                    case_id=case.id,
                    actor=WORKER_ACTOR,
                    action="finding_updated",
                    reason=(
                        f"记录已由{other}修改（非作者本人）/ finding revised by {other}, not its author"
                        if other
                        else "记录已更新 / finding revised"
                    ),
                    details={"finding": finding.doc_id, "rev": rev, **by},
                    at=now,
                )
            )
    return ChangeOutcome("updated", finding.case_id, doc_id=finding.doc_id)


async def withdraw_finding(
    session: AsyncSession, finding: Finding, rev: str, now: datetime, *, pushed_by: str | None = None
) -> ChangeOutcome:
    by, other = _by_whom(finding, pushed_by)
    finding.deleted = True
    finding.rev = rev
    finding.status_version += 1
    session.add(finding)
    if finding.case_id is not None:
        case = await session.get(Case, finding.case_id)
        if case is not None:
            case.updated_at = now  # other workers' join caches look here
            await refresh_case_view(session, case)
        session.add(
            CaseEvent(
                case_id=finding.case_id,
                actor=WORKER_ACTOR,
                action="finding_withdrawn",
                reason=(
                    f"记录已被{other}删除（非作者本人）/ finding deleted by {other}, not its author"
                    if other
                    else "记录已被作者删除 / finding deleted on the tablet"
                ),
                details={"finding": finding.doc_id, "rev": rev, **by},
                at=now,
            )
        )
    return ChangeOutcome("deleted", finding.case_id, doc_id=finding.doc_id)


async def refuse_clashes(
    session: AsyncSession, clashes: Sequence[tuple[Change, Finding]], source_db: str, now: datetime
) -> list[ChangeOutcome]:
    """Revisions of a known finding's id from another database: kept out, shown on the case."""
    events = [
        event_row(
            finding.case_id,
            "id_clash",
            now,
            reason="另一网格库中出现同编号文档，未采用 / same id in another database: ignored",
            details={
                "finding": finding.doc_id,
                "rev": change.rev,
                "source_db": source_db,
                "home_db": finding.source_db,
                "author": (change.doc or {}).get("author"),
                "deleted": change.deleted,
            },
        )
        for change, finding in clashes
        if finding.case_id is not None
    ]
    await bulk_insert(session, CaseEvent, events)
    return [ChangeOutcome("id_clash", finding.case_id, doc_id=finding.doc_id) for _, finding in clashes]
