"""The ``_local`` checkpoints this gateway process last read or wrote, kept in memory.

PouchDB reads a checkpoint before every write of it (to learn its revision), once per batch and
on both sides of a replication: served from SQL, that read cost ~7 ms of each ~50 ms batch.
A checkpoint another process wrote meanwhile makes this copy stale; the only harm is a
revision that no longer matches, so the write is refused with ``conflict``, the entry forgotten,
and PouchDB (which retries a conflicting checkpoint write after reading it again) reads SQL.
An older checkpoint at the start of a replication only makes the client look at changes again.
"""

from collections import OrderedDict
from typing import Any

__all__ = ["LocalDocCache"]

Key = tuple[str, str, str]
"""Owner, virtual database, document id."""


class LocalDocCache:
    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Key, tuple[int, dict[str, Any]]] = OrderedDict()

    def get(self, key: Key) -> tuple[int, dict[str, Any]] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, generation: int, body: dict[str, Any]) -> None:
        self._entries[key] = (generation, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forget(self, key: Key) -> None:
        self._entries.pop(key, None)
