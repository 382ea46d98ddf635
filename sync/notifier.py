"""Wakes waiting longpoll clients when a CouchDB database changes.

One watcher per database per gateway process (started on first use) longpolls CouchDB's
``_changes`` and bumps a counter; every client waiting on that database is woken. So a thousand
live tablets cost a handful of CouchDB connections, not a thousand.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping

from sync.couch import CouchClient, CouchError

__all__ = ["ChangeNotifier"]

log = logging.getLogger("gridpatrol.notifier")
_WATCH_TIMEOUT_MS = 55_000
_RETRY_S = 2.0
_READY_TIMEOUT_S = 10.0


class ChangeNotifier:
    def __init__(self, couch: CouchClient) -> None:
        self._couch = couch
        self._versions: dict[str, int] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Condition()

    async def snapshot(self, dbs: Iterable[str]) -> dict[str, int]:
        """Current versions of ``dbs``, starting their watchers; take it *before* reading changes."""
        dbs = list(dbs)
        for db in dbs:
            if db not in self._watchers:
                self._ready[db] = asyncio.Event()
                self._versions.setdefault(db, 0)
                self._watchers[db] = asyncio.create_task(self._watch(db), name=f"watch:{db}")
        # A watcher is ready once it knows where the database stands; waiting for that keeps a
        # change made right after this snapshot from being missed. A store that does not answer
        # must not hang the client: after a while go on, the waiter re-reads on its own timeout.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(self._ready[db].wait() for db in dbs)), _READY_TIMEOUT_S)
        return {db: self._versions[db] for db in dbs}

    async def wait(self, seen: Mapping[str, int], timeout_s: float) -> bool:
        """Wait until any database in ``seen`` moves past its version; False on timeout."""

        def moved() -> bool:
            return any(self._versions.get(db, 0) != version for db, version in seen.items())

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(moved), timeout=timeout_s)
            except TimeoutError:
                return False
        return True

    async def _bump(self, db: str) -> None:
        async with self._changed:
            self._versions[db] = self._versions.get(db, 0) + 1
            self._changed.notify_all()

    async def _start_position(self, db: str) -> str | int:
        while True:
            try:
                info = await self._couch.db_info(db)
                position: str | int = info.get("update_seq", 0)
                return position
            except CouchError as exc:
                log.warning("cannot read %s, retrying: %s", db, exc)
                await asyncio.sleep(_RETRY_S)

    async def _watch(self, db: str) -> None:
        since = await self._start_position(db)
        self._ready[db].set()
        while True:
            try:
                page = await self._couch.changes(
                    db,
                    {"feed": "longpoll", "since": since, "timeout": _WATCH_TIMEOUT_MS, "limit": 1000},
                    timeout=_WATCH_TIMEOUT_MS / 1000 + 10,
                )
            except CouchError as exc:
                log.warning("watching %s failed, retrying: %s", db, exc)
                await self._bump(db)  # wake waiters: they re-read and see the error themselves
                await asyncio.sleep(_RETRY_S)
                continue
            since = page.get("last_seq", since)
            if page.get("results"):
                await self._bump(db)

    async def close(self) -> None:
        """Stop the watchers and close the notifier's own CouchDB client."""
        for task in self._watchers.values():
            task.cancel()
        for task in self._watchers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers.clear()
        await self._couch.aclose()
