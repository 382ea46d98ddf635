"""Every document id of the small, rarely written databases, per process, at most a moment old.

A user's virtual database is their grid databases plus two small ones: reference data (written by
provisioning and admins) and each grid's alerts (missing-person alerts and urgent findings). A
document id may live in any of them, so without this catalog every push batch asked every source
(``_revs_diff`` and the stored revisions) and every pull page read every source's ``_changes``:
three CouchDB requests where one holds the data. With the catalog the small databases are asked
only about ids they hold, and skipped by ``_changes`` while nothing was written there.

How stale it may be: a refresh reads the database's ``_changes`` since the last one (ids only) at
most every ``ttl_s``, and this process's own writes are noted at once. What another process wrote
there less than ``ttl_s`` ago may not be seen yet: for that moment, a pull reads it on its next
page instead of this one, and a push of the same id is placed as if it were new. Documents never
move between databases, so an id, once catalogued, stays true. A database with more than
``max_ids`` documents is not catalogued (``None``): callers then ask it about every id.
"""

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sync.couch import CouchClient

__all__ = ["CatalogEntry", "IdCatalog"]

_PAGE = 10_000


@dataclass
class CatalogEntry:
    ids: set[str] = field(default_factory=set)
    seq: str | int = 0
    """The database's ``last_seq`` when ``ids`` was complete."""
    checked_at: float = float("-inf")
    oversized: bool = False


class IdCatalog:
    def __init__(self, ttl_s: float = 1.0, max_ids: int = 200_000) -> None:
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self._entries: dict[str, CatalogEntry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def entry(self, couch: CouchClient, db: str) -> CatalogEntry | None:
        """The database's ids and where its feed stood, refreshed when older than ``ttl_s``;
        ``None`` when it holds too many documents to catalogue. CouchDB errors propagate."""
        entry = self._entries.setdefault(db, CatalogEntry())
        if not self._stale(entry):
            return None if entry.oversized else entry
        async with self._locks.setdefault(db, asyncio.Lock()):
            if self._stale(entry):  # another request may have refreshed it while we waited
                await self._refresh(couch, db, entry)
        return None if entry.oversized else entry

    def _stale(self, entry: CatalogEntry) -> bool:
        return time.monotonic() - entry.checked_at > self.ttl_s

    async def _refresh(self, couch: CouchClient, db: str, entry: CatalogEntry) -> None:
        checked_at = time.monotonic()
        while not entry.oversized:
            page = await couch.changes(db, {"since": entry.seq, "limit": _PAGE})
            rows = page.get("results", [])
            entry.ids.update(str(row["id"]) for row in rows)
            entry.seq = page.get("last_seq", entry.seq)
            if len(entry.ids) > self.max_ids:
                entry.oversized = True
                entry.ids.clear()
            if len(rows) < _PAGE:
                break
        entry.checked_at = checked_at

    def note_written(self, db: str, doc_ids: Iterable[str]) -> None:
        """This process wrote ``doc_ids`` to ``db``: they live there now, and its feed moved."""
        entry = self._entries.get(db)
        if entry is None or entry.oversized:
            return
        entry.ids.update(doc_ids)
        entry.checked_at = float("-inf")
