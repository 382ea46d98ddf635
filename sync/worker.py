"""The change follower: reads every grid database's ``_changes`` and merges it into SQL.

Each page is applied in one SQL transaction together with the new checkpoint, so a worker killed
at any instant resumes where its last commit left it, and replays are no-ops (idempotent by
document id + revision). The checkpoint moves by compare-and-set, so two workers on the same feed
cannot both apply a page: the second one's commit is rolled back and it re-reads.

``run_once`` drains every feed it can lease and gives the leases back (``gridpatrol worker
--once``). ``run_forever`` follows: it keeps its leases (``sync._leases``), applies pages of the
feeds that have news one page at a time (alerts feeds first, grid feeds in turn), parks each
drained feed in a longpoll (``sync._watch``) and publishes the status outbox as soon as what it
applied is committed. CouchDB or SQL unreachable: it backs off with jitter, reports unhealthy in
``worker_heartbeats`` (``/health/worker``) and starts following afresh from the checkpoints.
"""

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import DOCUMENT_TYPES, SERVER_ONLY_TYPES
from server.db.models import FeedCheckpoint, WorkerHeartbeat, utc_now
from server.runtime import Runtime, make_couch_client
from sync._following import FeedStats, Following
from sync._leases import FeedLeases, LeaseLost
from sync._watch import FeedWatcher
from sync.conflicts import ConflictReport, examine, settle_resolved_elsewhere
from sync.conflicts import record as record_conflict
from sync.couch import CouchClient
from sync.merge import JoinCache, apply_page
from sync.merge_outbox import plan_merge, settle_pending
from sync.receipts import purge_receipts
from sync.writeback import STATUS_BATCH, publish_statuses

__all__ = ["STOPPED", "ChangeFollower", "FeedStats", "LeaseLost"]

log = logging.getLogger("gridpatrol.worker")
STOPPED = "已停止 / stopped"
"""The heartbeat's last error once a following worker has stopped cleanly."""
_RECEIPT_PURGE_EVERY_S = 3600.0
CONFLICT_TYPES = frozenset(DOCUMENT_TYPES) - SERVER_ONLY_TYPES
"""Documents tablets write: any of them can be edited on two devices offline."""


class CheckpointMoved(Exception):
    """Another worker advanced this feed first."""


def _worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"[:100]


class ChangeFollower:
    """Follows the feeds it holds a lease on; several followers (processes or hosts) share the
    feeds through ``feed_leases`` and never apply the same page twice (the checkpoint's
    compare-and-set and the lease renewal are both in the page's transaction)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        worker_id: str | None = None,
        lease_s: float | None = None,
        watch_couch: CouchClient | None = None,
    ) -> None:
        """``watch_couch``: the client for longpolls (default: one of the follower's own, with a
        pool of ``GRIDPATROL_WORKER_LONGPOLLS`` connections, made and closed by ``run_forever``)."""
        self.runtime = runtime
        self.worker_id = worker_id or _worker_id()
        self.lease_s = lease_s or runtime.settings.worker.lease_s
        self.leases = FeedLeases(runtime.sessions, self.worker_id, self.lease_s)
        self.healthy = True
        self.last_error: str | None = None
        self.consecutive_errors = 0
        self.join_cache = JoinCache()
        self.held: list[str] = []
        """Feeds this follower is following now (``run_forever``)."""
        self.watcher: FeedWatcher | None = None
        self._watch_couch = watch_couch
        self._positions: dict[str, str] = {}
        """Each feed's checkpoint as this follower last read or wrote it."""
        self._backoff_s = 0.0
        self._receipts_purged_at = float("-inf")

    def feeds(self) -> list[tuple[str, str]]:
        """(database, grid code) of every alerts database, then of every grid database: urgent
        findings are merged before any backlog."""
        couch = self.runtime.settings.couch
        codes = self.runtime.grids.grid_codes
        return [(couch.alert_db(code), code) for code in codes] + [
            (couch.grid_db(code), code) for code in codes
        ]

    async def _checkpoint(self, session: AsyncSession, db: str, *, lock: bool = False) -> str | None:
        query = select(FeedCheckpoint.seq).where(FeedCheckpoint.source_db == db)
        if lock:
            query = query.with_for_update()  # PostgreSQL; SQLite serialises writers anyway
        return (await session.exec(query)).first()

    async def _advance(self, session: AsyncSession, db: str, old: str | None, new: str) -> None:
        if old is None:
            session.add(FeedCheckpoint(source_db=db, seq=new))
            try:
                await session.flush()
            except IntegrityError as exc:
                raise CheckpointMoved(db) from exc
            return
        result = await session.exec(
            update(FeedCheckpoint)
            .where(col(FeedCheckpoint.source_db) == db, col(FeedCheckpoint.seq) == old)
            .values(seq=new, updated_at=utc_now())
        )
        if result.rowcount != 1:
            raise CheckpointMoved(db)

    async def acquire(self, db: str) -> bool:
        """Take or renew the lease on one feed; False while another worker holds it."""
        return await self.leases.acquire(db)

    async def release(self) -> None:
        """Give every lease back (on a clean stop), so others need not wait for expiry."""
        await self.leases.release()

    async def beat(self) -> None:
        """Record how this worker is doing (``/health/worker``); never raises."""
        now = utc_now()
        try:
            async with self.runtime.sessions() as session, session.begin():
                row = await session.get(WorkerHeartbeat, self.worker_id) or WorkerHeartbeat(
                    worker_id=self.worker_id
                )
                row.healthy = self.healthy
                row.last_error = self.last_error
                row.consecutive_errors = self.consecutive_errors
                row.beat_at = now
                if self.healthy:
                    row.last_ok_at = now
                session.add(row)
        except Exception as exc:  # the SQL store may be the very thing that is down
            log.warning("heartbeat not recorded: %s", exc)

    async def process_page(self, db: str, grid: str, stats: FeedStats) -> int:
        """Apply one page of one feed; returns the number of changes read (0 when drained)."""
        settings = self.runtime.settings
        async with self.runtime.sessions() as session:
            since = await self._checkpoint(session, db)
        page = await self.runtime.couch.changes(
            db,
            {
                "since": since or 0,
                "limit": settings.worker.batch_size,
                "include_docs": True,
                "conflicts": True,
                "style": "all_docs",
            },
        )
        rows = page.get("results", [])
        last_seq = str(page.get("last_seq", since or 0))
        if not rows and last_seq == (since or "0"):
            self._positions[db] = since or "0"
            await self.settle_merges(db, stats, [])
            return 0
        conflicts = await self._examine_conflicts(db, rows)
        counts: dict[str, int] = {}
        try:
            async with self.runtime.sessions() as session, session.begin():
                await self._bound_lock_waits(session)
                # The lease row first: on PostgreSQL its row lock queues any other transaction on
                # this feed behind ours; then the checkpoint must still be where we read from.
                await self.leases.renew(session, db)
                if await self._checkpoint(session, db, lock=True) != since:
                    raise CheckpointMoved(db)
                outcomes = await apply_page(
                    session,
                    source_db=db,
                    source_grid=grid,
                    rows=rows,
                    grid_index=self.runtime.grids.index,
                    taxonomy=self.runtime.taxonomy,
                    timezone=settings.timezone,
                    join_cache=self.join_cache,
                )
                for outcome in outcomes:
                    counts[outcome.action] = counts.get(outcome.action, 0) + 1
                    if outcome.action == "invalid":
                        log.warning("invalid document %s in %s: %s", outcome.doc_id, db, outcome.detail)
                await self._record_conflicts(session, db, grid, conflicts, counts)
                superseded = await settle_resolved_elsewhere(session, rows)
                if superseded:
                    counts["conflict_superseded"] = counts.get("conflict_superseded", 0) + superseded
                await self._advance(session, db, since, last_seq)
        except BaseException as exc:
            self.join_cache.clear()  # it holds this page's additions, now rolled back
            if not isinstance(exc, IntegrityError):
                raise
            # Only a page someone else applied first may collide; anything else is a real error.
            async with self.runtime.sessions() as session:
                if await self._checkpoint(session, db) != since:
                    raise CheckpointMoved(db) from None
            raise
        for key, value in counts.items():
            stats.outcomes[key] = stats.outcomes.get(key, 0) + value
        self._positions[db] = last_seq
        stats.changes += len(rows)
        await self.settle_merges(db, stats, conflicts)
        return len(rows)

    async def _bound_lock_waits(self, session: AsyncSession) -> None:
        """On PostgreSQL a page waits for a lock (the lease row, a join scope) at most half a lease:
        a holder whose connection is half open (its host gone, not killed) must not stall us for
        as long as TCP takes to notice. The page then fails and is retried after a back-off."""
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(self.lease_s * 500)}")

    # --- conflicts: classified before the page, recorded in it, soft merges written after it ----
    # (sync/merge_outbox.py: a merge written to CouchDB is recorded in SQL first, never lost)

    async def _examine_conflicts(self, db: str, rows: list[dict[str, Any]]) -> list[ConflictReport]:
        """Classify every conflicted field document of the page (findings, visits, patrols,
        installations, follow-ups, alerts). Nothing is written to CouchDB here."""
        found: list[ConflictReport] = []
        for row in rows:
            doc = row.get("doc") or {}
            if not doc.get("_conflicts") or doc.get("_deleted") or doc.get("type") not in CONFLICT_TYPES:
                continue
            report = await examine(self.runtime.couch, db, doc)
            if report is not None:
                found.append(report)
        return found

    async def _record_conflicts(
        self,
        session: AsyncSession,
        db: str,
        grid: str,
        conflicts: list[ConflictReport],
        counts: dict[str, int],
    ) -> None:
        """In the page's transaction: hard conflicts open for the leader, soft ones pending with
        the revision their merge will have."""
        for report in conflicts:
            merge_rev = plan_merge(report).merge_rev if report.merged is not None else None
            if await record_conflict(session, source_db=db, report=report, grid=grid, merge_rev=merge_rev):
                key = f"conflict_{report.kind}"
                counts[key] = counts.get(key, 0) + 1

    async def settle_merges(
        self, db: str, stats: FeedStats, examined: list[ConflictReport] | None = None
    ) -> None:
        """After the page's commit: write this feed's pending merges to CouchDB and mark them (also
        those a failed or killed pass left pending)."""
        settled = await settle_pending(
            self.runtime.sessions,
            self.runtime.couch,
            db,
            holder=self.worker_id,
            lease_s=self.lease_s,
            examined=examined or [],
        )
        for key, value in settled.items():
            stats.outcomes[key] = stats.outcomes.get(key, 0) + value

    async def run_once(self) -> FeedStats:
        """Drain every feed this worker can lease, then publish pending statuses
        (``gridpatrol worker --once``). Leases are given back at the end of the pass."""
        await self.runtime.refresh()
        stats = FeedStats()
        try:
            await self._drain(stats)
        finally:
            with contextlib.suppress(Exception):
                await self.release()
        await self.publish(stats)
        return stats

    async def publish(self, stats: FeedStats, *, batches: int | None = None, shared: bool = False) -> bool:
        """Publish the status outbox: everything pending, or at most ``batches`` batches (old
        receipts no page took are purged about hourly). ``shared``: only the statuses of the feeds
        this worker holds (while following, beside other workers). True when more may be pending."""
        if time.monotonic() - self._receipts_purged_at > _RECEIPT_PURGE_EVERY_S:
            async with self.runtime.sessions() as session, session.begin():
                purged = await purge_receipts(session, utc_now())
            self._receipts_purged_at = time.monotonic()
            if purged:
                log.info("purged %d receipts older than any page will read", purged)
        others = [db for db, _ in self.feeds() if db not in self.held] if shared else []
        done = 0
        while batches is None or done < batches:
            published = await publish_statuses(self.runtime.sessions, self.runtime.couch, others=others)
            stats.published += published
            done += 1
            if published < STATUS_BATCH:
                return False
        return True

    async def _drain(self, stats: FeedStats) -> None:
        for db, grid in self.feeds():
            if not await self.acquire(db):
                stats.skipped_feeds += 1
                continue
            while await self.step(db, grid, stats):
                pass

    async def step(self, db: str, grid: str, stats: FeedStats) -> int | None:
        """One page of one feed: the changes read (0: drained), None once the feed is no longer
        ours. A page another worker applied first is read again from the new checkpoint."""
        while True:
            try:
                return await self.process_page(db, grid, stats)
            except CheckpointMoved:
                log.info("feed %s advanced by another worker; re-reading", db)
            except LeaseLost:
                log.info("lease on %s taken over by another worker", db)
                return None

    def position(self, db: str) -> str:
        """The feed's checkpoint as this follower last read or wrote it."""
        return self._positions.get(db, "0")

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Follow the feeds until ``stop`` is set; then give the leases back."""
        settings = self.runtime.settings.worker
        own_client = self._watch_couch is None
        watch_couch = self._watch_couch or make_couch_client(
            self.runtime.settings, max_connections=settings.max_longpolls
        )
        self.watcher = FeedWatcher(watch_couch, slots=settings.max_longpolls, wait_s=settings.longpoll_wait_s)
        try:
            while not stop.is_set():
                try:
                    await Following(self, self.watcher, stop).run()
                except Exception as exc:  # CouchDB, SQL, or a bug: the same back-off for all
                    wait = self._failed(exc)
                    await self.beat()
                    log.warning("worker error, retrying in %.1fs: %s", wait, self.last_error)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            self.held = []
            with contextlib.suppress(Exception):
                await self.release()
            # A stopped worker merges nothing: say so, rather than look healthy until it goes stale.
            self.healthy, self.last_error = False, STOPPED
            await self.beat()
            if own_client:
                await watch_couch.aclose()

    def succeeded(self) -> None:
        self.healthy, self.last_error, self.consecutive_errors, self._backoff_s = True, None, 0, 0.0

    def _failed(self, exc: BaseException) -> float:
        """Record an error; returns how long to back off (doubling, with jitter)."""
        self.healthy, self.last_error = False, f"{type(exc).__name__}: {exc}"[:2000]
        self.consecutive_errors += 1
        ceiling = self.runtime.settings.worker.max_backoff_s
        self._backoff_s = min(ceiling, max(0.5, self._backoff_s * 2))
        return self._backoff_s * (0.8 + 0.4 * random.random())
