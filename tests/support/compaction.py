"""Waiting for CouchDB's background compaction to drop an old revision's body."""

import asyncio

from sync.couch import CouchClient, CouchNotFound

__all__ = ["compacted_away"]


async def compacted_away(couch: CouchClient, db: str, doc_id: str, rev: str, *, seconds: float = 5.0) -> bool:
    """Whether ``rev`` of ``doc_id`` stops being readable within ``seconds`` (compaction started)."""
    for _ in range(int(seconds / 0.1)):
        try:
            await couch.get_doc(db, doc_id, params={"rev": rev})
        except CouchNotFound:
            return True
        await asyncio.sleep(0.1)
    return False
