"""Following feeds (``ChangeFollower.run_forever``): one stretch from a fresh start to a stop or
the first error.

Each turn of the loop: renew the leases when due (every third of the lease time, which also
writes the heartbeat), notice which longpolls have fired, then either apply one page of a feed
with news (alerts feeds first, grid feeds in turn) or, with every held feed drained, publish the
status outbox and wait for a longpoll, the next lease renewal, the next outbox look or the stop.
The outbox is published as soon as the feeds are drained after a page was applied, and at least
one batch every ``GRIDPATROL_WORKER_POLL`` seconds during a long backlog; a worker publishes the
statuses of the feeds it holds, a few batches per turn of the loop.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sync._watch import FeedWatcher

if TYPE_CHECKING:
    from sync.worker import ChangeFollower

__all__ = ["FeedStats", "Following"]

log = logging.getLogger("gridpatrol.worker")

_OUTBOX_BATCHES_PER_TURN = 5
"""Status batches published between two looks at the leases and feeds: a backlog of thousands of
statuses (a whole campaign's cases moving at once) must not delay a lease renewal past its lease."""


@dataclass
class FeedStats:
    changes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    published: int = 0
    skipped_feeds: int = 0
    """Feeds another worker held."""


class Following:
    """One stretch of following, from a fresh start to ``stop`` or the first error (which the
    follower backs off from before starting another). Longpolls never outlive it."""

    def __init__(self, follower: "ChangeFollower", watcher: FeedWatcher, stop: asyncio.Event) -> None:
        self.follower = follower
        self.watcher = watcher
        self.stop = stop
        self.grid_of: dict[str, str] = {}
        self.urgent: set[str] = set()
        self.dirty: set[str] = set()
        """Held feeds that may have changes: read a page of one of them before waiting."""
        self.watches: dict[str, asyncio.Task[None]] = {}
        self.last_served = ""
        self.stats = FeedStats()
        self.outbox_due = True

    async def run(self) -> None:
        follower, runtime = self.follower, self.follower.runtime
        settings = runtime.settings.worker
        loop = asyncio.get_running_loop()
        await runtime.couch.server_info()  # both stores must answer before we say we are well
        follower.held = []  # every feed kept from the last stretch is read afresh
        next_keep = next_outbox = loop.time()
        stopped = asyncio.create_task(self.stop.wait())
        try:
            while not self.stop.is_set():
                if loop.time() >= next_keep:
                    await self._keep()
                    next_keep = loop.time() + follower.leases.renew_every_s
                self._collect_watches()
                if self.dirty:
                    await self._page(self._next_feed())
                    if (self.outbox_due and not self.dirty) or loop.time() >= next_outbox:
                        await self._flush(batches=1 if self.dirty else _OUTBOX_BATCHES_PER_TURN)
                        next_outbox = loop.time() + settings.idle_poll_s
                    continue
                if self.outbox_due or loop.time() >= next_outbox:
                    await self._flush(batches=_OUTBOX_BATCHES_PER_TURN)  # the case API's changes too
                    next_outbox = loop.time() + settings.idle_poll_s
                    if self.outbox_due:
                        continue  # more pending: leases and feeds get their turn between batches
                timeout = max(0.0, min(next_keep, next_outbox) - loop.time())
                await asyncio.wait(
                    [stopped, *self.watches.values()], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            stopped.cancel()
            for task in self.watches.values():
                task.cancel()
            for task in self.watches.values():
                with contextlib.suppress(BaseException):
                    await task
            self._log()

    async def _keep(self) -> None:
        """Renew and balance the leases (``FeedLeases.keep``), pick up new feeds, settle pending
        merges, report well."""
        follower = self.follower
        await follower.runtime.refresh()
        feeds = follower.feeds()
        self.grid_of = dict(feeds)
        self.urgent = {follower.runtime.settings.couch.alert_db(code) for _, code in feeds}
        held = await follower.leases.keep([db for db, _ in feeds])
        for db in set(follower.held) - set(held):
            log.info("no longer following %s (given back or taken over)", db)
            self._drop(db)
        self.dirty |= set(held) - set(follower.held)
        follower.held = held
        # A merge a failed write or a lapsed claim left pending is retried here too, not only at
        # its feed's next change (a quiet alerts database may not change for hours).
        for db in held:
            await follower.settle_merges(db, self.stats)
        follower.succeeded()
        await follower.beat()

    def _drop(self, db: str) -> None:
        self.dirty.discard(db)
        task = self.watches.pop(db, None)
        if task is not None:
            task.cancel()
        if db in self.follower.held:
            self.follower.held.remove(db)

    def _collect_watches(self) -> None:
        for db, task in list(self.watches.items()):
            if task.done():
                del self.watches[db]
                task.result()  # a CouchDB error ends this stretch: back off, start afresh
                self.dirty.add(db)

    def _next_feed(self) -> str:
        """A dirty alerts feed if there is one (emergency fast path), else the next dirty grid
        feed after the one served last, so one grid's backlog does not hold the others up."""
        held = self.follower.held
        urgent = [db for db in held if db in self.dirty and db in self.urgent]
        if urgent:
            return urgent[0]
        waiting = [db for db in held if db in self.dirty]
        after = held.index(self.last_served) if self.last_served in held else -1
        later = [db for db in waiting if held.index(db) > after]
        self.last_served = (later or waiting)[0]
        return self.last_served

    async def _page(self, db: str) -> None:
        """Apply one page; a short page means the feed was drained when it was read, so it goes
        straight to its longpoll (which answers at once if more came meanwhile)."""
        follower = self.follower
        read = await follower.step(db, self.grid_of[db], self.stats)
        if read is None:
            self._drop(db)
            return
        if read:
            self.outbox_due = True
        if read >= follower.runtime.settings.worker.batch_size:
            return
        self.dirty.discard(db)
        self.watches[db] = asyncio.create_task(
            self.watcher.next_change(db, follower.position(db)), name=f"follow:{db}"
        )

    async def _flush(self, batches: int) -> None:
        """A few batches of this worker's share of the status outbox (see ``sync.writeback``)."""
        self.outbox_due = await self.follower.publish(self.stats, batches=batches, shared=True)
        self._log()

    def _log(self) -> None:
        stats = self.stats
        if stats.changes or stats.published:
            log.info(
                "merged %d changes %s, published %d statuses", stats.changes, stats.outcomes, stats.published
            )
        self.stats = FeedStats()
