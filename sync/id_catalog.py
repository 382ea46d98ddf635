"""Every document id of the small databases (reference data, each grid's alerts) and where their
feeds stand, per process, at most a moment old.

A user's virtual database is their grid databases plus these small ones. Without the catalog
every pull page read every source's ``_changes`` (three requests where one holds the data) and
every push batch asked the reference database about ids it never holds. With it:

* a pull page skips a small database whose feed stood at the client's position at the catalog's
  last look; a longpoll expires the entries of its databases when it starts and whenever it hears
  one of them move, so a live tablet reads a fresh alert at once, and a normal pull reads what
  another process wrote less than ``ttl_s`` ago on its next page or sync;
* a push asks the reference database only about the ids it holds, as the catalog last saw them
  (``server.gateway._lookup``); an alerts database, written by tablets, is asked only about the ids
  of a look begun after the push arrived (``current``): the feed read since the last look, usually
  empty, instead of every id of the batch. That holds for a database kept in one copy
  (pouchdb-server, a single CouchDB node, a cluster with ``n=1``): its feed has every write
  CouchDB acknowledged. A clustered CouchDB reads ``_changes`` from one copy of each shard, not a
  quorum, so a write acknowledged by the other copies may not be in it yet; there ``current``
  answers ``None`` and the ids are asked with ``_all_docs``, a quorum read.

A refresh reads the database's ``_changes`` since the last one (ids only) at most every ``ttl_s``,
and this process's own writes are noted at once; a gateway process reads every entry once before
it serves (``server.gateway.warm_id_catalog``). Documents never move between databases, so an id, once
catalogued, stays true. A database with more than ``max_ids`` documents is not catalogued
(``None``): callers then ask it directly.

A database deleted and created again under the same name: CouchDB 2 and 3 see that a sequence
belongs to the old file and rewind it to 0, so the next look reads the new database whole (the old
ids stay, which only costs lookups). pouchdb-server's integer sequences cannot tell: ids written to
the new database before its sequence passes the old position stay unseen until the process
restarts.
"""

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.couch import CouchClient

__all__ = ["CatalogEntry", "IdCatalog", "copies_of"]

_PAGE = 10_000


@dataclass
class CatalogEntry:
    ids: set[str] = field(default_factory=set)
    seq: str | int = 0
    """The database's ``last_seq`` when ``ids`` was complete."""
    checked_at: float = float("-inf")
    oversized: bool = False
    moves: int = 0
    """Counts the times the database was known to move (``expire``, ``note_written``): a look
    begun before one of them finishes without making the entry fresh."""
    copies: int | None = None
    """Copies CouchDB keeps of each shard (``cluster.n`` of the database's info), once asked."""


def copies_of(info: Mapping[str, Any]) -> int:
    """How many copies of each shard a database info answer describes: CouchDB 3 says it in
    ``cluster.n``; pouchdb-server and CouchDB 1 keep one and say nothing."""
    cluster = info.get("cluster")
    n = cluster.get("n") if isinstance(cluster, Mapping) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


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

    async def current(self, couch: CouchClient, db: str) -> CatalogEntry | None:
        """The database's ids as of a look begun after this call, so a document written a moment
        ago by any process is in it; ``None`` when it holds too many documents to catalogue or is
        kept in several copies (see the module docstring). Concurrent callers share one look when
        it began after all of them asked."""
        asked_at = time.monotonic()
        entry = self._entries.setdefault(db, CatalogEntry())
        async with self._locks.setdefault(db, asyncio.Lock()):
            if entry.copies is None:
                entry.copies = copies_of(await couch.db_info(db))
            if entry.copies > 1:
                return None
            if entry.checked_at <= asked_at:
                await self._refresh(couch, db, entry)
        return None if entry.oversized else entry

    def _stale(self, entry: CatalogEntry) -> bool:
        return time.monotonic() - entry.checked_at > self.ttl_s

    async def _refresh(self, couch: CouchClient, db: str, entry: CatalogEntry) -> None:
        checked_at, moves = time.monotonic(), entry.moves
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
        if entry.moves == moves:  # else the database moved during the look: the next use looks again
            entry.checked_at = checked_at

    def expire(self, dbs: Iterable[str]) -> None:
        """These databases moved (a longpoll heard it): look again at the next use."""
        for db in dbs:
            entry = self._entries.get(db)
            if entry is not None:
                entry.checked_at = float("-inf")
                entry.moves += 1

    def note_written(self, db: str, doc_ids: Iterable[str]) -> None:
        """This process wrote ``doc_ids`` to ``db``: they live there now, and its feed moved."""
        entry = self._entries.get(db)
        if entry is None or entry.oversized:
            return
        entry.ids.update(doc_ids)
        entry.checked_at = float("-inf")
        entry.moves += 1
