"""The change follower: reads every grid database's ``_changes`` and merges it into SQL.

Each page is applied in one SQL transaction together with the new checkpoint, so a worker killed
at any instant resumes where its last commit left it, and replays are no-ops (idempotent by
document id + revision). The checkpoint moves by compare-and-set, so two workers on the same feed
cannot both apply a page: the second one's commit is rolled back and it re-reads.
"""

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import FeedCheckpoint, utc_now
from server.runtime import Runtime
from sync.conflicts import ConflictReport, ConflictWriteError, examine, write_resolution
from sync.conflicts import record as record_conflict
from sync.couch import CouchError
from sync.merge import MERGED_TYPES, apply_page
from sync.writeback import publish_statuses

__all__ = ["ChangeFollower", "FeedStats"]

log = logging.getLogger("gridpatrol.worker")


class CheckpointMoved(Exception):
    """Another worker advanced this feed first."""


@dataclass
class FeedStats:
    changes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    published: int = 0


class ChangeFollower:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.healthy = True
        self.last_error: str | None = None

    def feeds(self) -> list[tuple[str, str]]:
        """(database, grid code) of every alerts database, then of every grid database: urgent
        findings are merged before any backlog."""
        couch = self.runtime.settings.couch
        codes = self.runtime.grids.grid_codes
        return [(couch.alert_db(code), code) for code in codes] + [
            (couch.grid_db(code), code) for code in codes
        ]

    async def _checkpoint(self, session: AsyncSession, db: str) -> str | None:
        row = (await session.exec(select(FeedCheckpoint).where(FeedCheckpoint.source_db == db))).first()
        return row.seq if row else None

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
            return 0
        conflicts = await self._examine_conflicts(db, rows)
        async with self.runtime.sessions() as session, session.begin():
            outcomes = await apply_page(
                session,
                source_db=db,
                source_grid=grid,
                rows=rows,
                grid_index=self.runtime.grids.index,
                taxonomy=self.runtime.taxonomy,
                timezone=settings.timezone,
            )
            for outcome in outcomes:
                stats.outcomes[outcome.action] = stats.outcomes.get(outcome.action, 0) + 1
                if outcome.action == "invalid":
                    log.warning("invalid document %s in %s: %s", outcome.doc_id, db, outcome.detail)
            for report, result_rev in conflicts:
                if await record_conflict(
                    session, source_db=db, report=report, result_rev=result_rev, grid=grid
                ):
                    key = f"conflict_{report.kind}"
                    stats.outcomes[key] = stats.outcomes.get(key, 0) + 1
            await self._advance(session, db, since, last_seq)
        stats.changes += len(rows)
        return len(rows)

    async def _examine_conflicts(
        self, db: str, rows: list[dict[str, Any]]
    ) -> list[tuple[ConflictReport, str | None]]:
        """Classify every conflicted finding of the page; merge the soft ones in CouchDB."""
        found: list[tuple[ConflictReport, str | None]] = []
        for row in rows:
            doc = row.get("doc") or {}
            if not doc.get("_conflicts") or doc.get("_deleted") or doc.get("type") not in MERGED_TYPES:
                continue
            report = await examine(self.runtime.couch, db, doc)
            if report is None:
                continue
            result_rev: str | None = None
            if report.merged is not None:
                try:
                    result_rev = await write_resolution(
                        self.runtime.couch,
                        db,
                        report.doc_id,
                        report.merged,
                        report.winner_rev,
                        [rev for rev in report.leaves if rev != report.winner_rev],
                    )
                except ConflictWriteError as exc:
                    # The document moved on meanwhile: its next change brings the conflict back.
                    log.warning("soft merge of %s not written: %s", report.doc_id, exc)
                    continue
            found.append((report, result_rev))
        return found

    async def run_once(self) -> FeedStats:
        """Drain every feed, then publish pending statuses."""
        await self.runtime.refresh()
        stats = FeedStats()
        for db, grid in self.feeds():
            while True:
                try:
                    read = await self.process_page(db, grid, stats)
                except CheckpointMoved:
                    log.info("feed %s advanced by another worker; re-reading", db)
                    continue
                if read == 0:
                    break
        while True:
            published = await publish_statuses(self.runtime.sessions, self.runtime.couch)
            stats.published += published
            if published == 0:
                break
        return stats

    async def run_forever(self, stop: asyncio.Event) -> None:
        delay = 0.0
        max_backoff = self.runtime.settings.worker.max_backoff_s
        while not stop.is_set():
            try:
                stats = await self.run_once()
                self.healthy, self.last_error, delay = True, None, 0.0
                if stats.changes or stats.published:
                    log.info(
                        "merged %d changes %s, published %d statuses",
                        stats.changes,
                        stats.outcomes,
                        stats.published,
                    )
                wait = self.runtime.settings.worker.idle_poll_s if not stats.changes else 0.0
            except (CouchError, OSError, Exception) as exc:
                self.healthy, self.last_error = False, f"{type(exc).__name__}: {exc}"
                delay = min(max_backoff, max(0.5, delay * 2)) * (0.8 + 0.4 * random.random())
                log.warning("worker error, retrying in %.1fs: %s", delay, self.last_error)
                wait = delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
