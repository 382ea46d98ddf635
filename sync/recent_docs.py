"""Stored winning revisions looked up a moment ago, per process.

PouchDB pushes each batch as ``_revs_diff`` and then, at once, ``_bulk_docs`` with the missing
documents. The gateway needs the same facts for both (where each id lives, and the stored
revision whose author decides who may edit it), so ``_revs_diff`` looks them up and ``_bulk_docs``
reuses what is at most ``ttl_s`` old instead of asking CouchDB again. Writes through this process
forget what they touch. What another process wrote in the last ``ttl_s`` is not seen: a push then
places a document another process created a moment earlier *with the same id* as if it were new.
Ids are the tablets' own random ones (and ``status:`` ids are reserved), so this needs two devices
creating one id in the same second; CouchDB then keeps both branches, the worker shows the
conflict to the grid leader and never lets the other author's branch rewrite the finding.
"""

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RecentDocs", "StoredDoc"]


@dataclass(frozen=True)
class StoredDoc:
    db: str | None
    """The database holding the id; None when none of the databases asked holds it."""
    doc: dict[str, Any] | None
    """The winning revision (None when deleted or absent)."""


class RecentDocs:
    def __init__(self, ttl_s: float = 1.0, capacity: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[float, tuple[str, ...], StoredDoc]] = OrderedDict()

    def remember(self, asked: Sequence[str], found: dict[str, StoredDoc]) -> None:
        """``found`` maps every id looked up in the databases ``asked`` to what they hold."""
        now, key = time.monotonic(), tuple(asked)
        for doc_id, stored in found.items():
            self._entries[doc_id] = (now, key, stored)
            self._entries.move_to_end(doc_id)
        # Oldest first: drop what expired (bodies are not kept longer than they serve), then
        # whatever exceeds the capacity.
        while self._entries and (
            len(self._entries) > self.capacity or now - next(iter(self._entries.values()))[0] > self.ttl_s
        ):
            self._entries.popitem(last=False)

    def recall(self, asked: Sequence[str], doc_ids: Iterable[str]) -> dict[str, StoredDoc] | None:
        """What was found for every one of ``doc_ids`` in the same databases a moment ago, or None
        when any of them was not looked up (or too long ago): then everything is asked afresh."""
        now, key = time.monotonic(), tuple(asked)
        recalled: dict[str, StoredDoc] = {}
        for doc_id in doc_ids:
            entry = self._entries.get(doc_id)
            if entry is None or entry[1] != key or now - entry[0] > self.ttl_s:
                return None
            recalled[doc_id] = entry[2]
        return recalled

    def __len__(self) -> int:
        return len(self._entries)

    def forget(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            self._entries.pop(doc_id, None)
