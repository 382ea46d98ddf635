"""Where documents live: a bounded, per-process memory of document id → database.

A document never moves from the database it was first written to, so a remembered home is never
wrong; a forgotten one only costs a fan-out to every source of the user. It saves a pull asking
every source for every document it just saw in the changes feed.
"""

from collections import OrderedDict

__all__ = ["DocHomes"]


class DocHomes:
    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._homes: OrderedDict[str, str] = OrderedDict()

    def remember(self, doc_id: str, db: str) -> None:
        self._homes[doc_id] = db
        self._homes.move_to_end(doc_id)
        if len(self._homes) > self.capacity:
            self._homes.popitem(last=False)

    def home(self, doc_id: str) -> str | None:
        return self._homes.get(doc_id)
