"""Receipts on the worker's side: when the gateway received each finding, and their cleanup.

The gateway stamps every revision it stores (``server.db.models.Receipt``). A finding's receive
time is the earliest receipt of any of its revisions, never later than the worker's own clock
(another host's clock may run ahead); without a receipt (a document written straight to CouchDB,
or a receipt the gateway could not record) it is the worker's time, as before. Receipts of a
page's documents are deleted in the page's transaction; those that no page deletes (a receipt
committed after the worker read its change) are purged once they are older than any join window.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import Receipt, as_utc

__all__ = ["RECEIPT_RETENTION", "forget_receipts", "purge_receipts", "pushers", "received_times"]

RECEIPT_RETENTION = timedelta(days=30)
_CHUNK = 500


async def received_times(session: AsyncSession, doc_ids: Sequence[str], now: datetime) -> dict[str, datetime]:
    """The earliest receipt of each document that has one, at most ``now``."""
    times: dict[str, datetime] = {}
    for start in range(0, len(doc_ids), _CHUNK):
        rows = await session.exec(
            select(Receipt.doc_id, func.min(Receipt.received_at))
            .where(col(Receipt.doc_id).in_(doc_ids[start : start + _CHUNK]))
            .group_by(col(Receipt.doc_id))
        )
        times.update({doc_id: min(as_utc(at), now) for doc_id, at in rows.all()})
    return times


async def pushers(session: AsyncSession, revisions: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Who pushed each of these (doc_id, rev) through the gateway, for those with a receipt."""
    wanted = set(revisions)
    ids = sorted({doc_id for doc_id, _ in wanted})
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = await session.exec(
            select(Receipt.doc_id, Receipt.rev, Receipt.username).where(
                col(Receipt.doc_id).in_(ids[start : start + _CHUNK])
            )
        )
        found.update(((doc_id, rev), user) for doc_id, rev, user in rows.all() if (doc_id, rev) in wanted)
    return found


async def forget_receipts(session: AsyncSession, doc_ids: Sequence[str]) -> None:
    """The page that applied these documents no longer needs their receipts."""
    for start in range(0, len(doc_ids), _CHUNK):
        await session.exec(delete(Receipt).where(col(Receipt.doc_id).in_(doc_ids[start : start + _CHUNK])))


async def purge_receipts(session: AsyncSession, now: datetime) -> int:
    """Delete receipts older than ``RECEIPT_RETENTION``: no page will ever read them."""
    result = await session.exec(delete(Receipt).where(col(Receipt.received_at) < now - RECEIPT_RETENTION))
    return int(result.rowcount or 0)
