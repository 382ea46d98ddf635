"""A per-process memory of CouchDB database info answers, kept for a moment.

PouchDB asks for the source's info after every batch it replicates (only to show progress), and a
virtual database's info asks every source database of the user. Answering those from a second-old
copy spares CouchDB a fan-out per batch. Staleness is harmless: an older ``update_seq`` only makes a
``since=now`` client read a few changes again. Writes made through this process forget the entry.
"""

import time
from typing import Any

__all__ = ["DbInfoCache"]


class DbInfoCache:
    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, db: str) -> dict[str, Any] | None:
        entry = self._entries.get(db)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def put(self, db: str, info: dict[str, Any]) -> None:
        self._entries[db] = (time.monotonic(), info)

    def forget(self, db: str) -> None:
        self._entries.pop(db, None)
