"""Waiting for the next change of an idle feed: ``_changes?feed=longpoll``, a bounded number at once.

The longpoll is only a wake-up call: it asks for one change after the feed's checkpoint, without
documents, and the follower then reads pages from the checkpoint stored in SQL as it always does.
So nothing is ever queued here and nothing can be lost: a feed being applied has no longpoll open
(backpressure is the follower's own pace, as cht-core's sentinel stops listening while its queue
is full and resumes from its stored sequence), and a wake-up that comes to nothing costs one
empty page. Sequences stay opaque strings (CouchDB 3's are not numbers).

The two backends differ: Apache CouchDB answers a longpoll with no news after its ``timeout``;
pouchdb-server 4.2 ignores ``timeout``, writes a newline every 6 s and answers only when a
change comes. So the watcher sends ``timeout`` (no ``heartbeat``: on CouchDB a heartbeat would
override it) and also ends the wait itself a little after it, closing that connection.

At most ``slots`` longpolls are open at once. With more idle feeds than slots the feeds take turns
in arrival order, and each longpoll is shortened so every feed is looked at about once per full
wait (``wait_s``), never less than ``MIN_TURN_S`` at a time.

``_db_updates`` (which databases changed) would let one request watch every feed on Apache CouchDB;
pouchdb-server answers it with 400, so it is not used (a possible optimisation for CouchDB only).
"""

import asyncio

from sync.couch import CouchClient

__all__ = ["MIN_TURN_S", "FeedWatcher"]

MIN_TURN_S = 1.0
_CUTOFF_SLACK_S = 1.0
"""We end a longpoll this long after its ``timeout`` when the server has not (pouchdb-server)."""
_HTTP_SLACK_S = 10.0
"""The HTTP read timeout exceeds the longpoll's own by this much: a backstop only."""


class FeedWatcher:
    """Longpolls for idle feeds through its own CouchDB client (sized to ``slots``), so waiting
    never takes a connection the pages and the status outbox need."""

    def __init__(self, couch: CouchClient, *, slots: int, wait_s: float) -> None:
        self.couch = couch
        self.slots = slots
        self.wait_s = wait_s
        self._gate = asyncio.Semaphore(slots)  # FIFO: waiting feeds are served in turn
        self.waiting = 0
        """Feeds waiting for news: in a longpoll, or queued for a turn."""
        self.open = 0
        """Longpolls open now."""

    def _turn_s(self) -> float:
        if self.waiting <= self.slots:
            return self.wait_s
        return max(MIN_TURN_S, self.wait_s * self.slots / self.waiting)

    async def next_change(self, db: str, since: str) -> None:
        """Return once ``db`` has a change after ``since``; CouchDB errors are raised."""
        self.waiting += 1
        try:
            while True:
                async with self._gate:
                    turn = self._turn_s()
                    self.open += 1
                    try:
                        page = await asyncio.wait_for(
                            self.couch.changes(
                                db,
                                {"feed": "longpoll", "since": since, "limit": 1, "timeout": int(turn * 1000)},
                                timeout=turn + _HTTP_SLACK_S,
                            ),
                            timeout=turn + _CUTOFF_SLACK_S,
                        )
                    except TimeoutError:
                        continue  # no news in this turn (pouchdb-server does not say so itself)
                    finally:
                        self.open -= 1
                if page.get("results"):
                    return
        finally:
            self.waiting -= 1
