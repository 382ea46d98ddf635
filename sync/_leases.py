"""Feed leases: which worker follows which feed, kept in ``feed_leases``.

Lifecycle. ``gridpatrol worker --once`` takes each feed's lease for its pass and gives every lease
back at the end. A following worker (``run_forever``) keeps its leases: it renews them every third
of the lease time (``FeedLeases.keep``) and in every page's transaction (``FeedLeases.renew``,
which is what makes a lost lease abort the page), and gives them back on a clean stop. A worker
that dies or stops renewing (stuck in back-off) loses its feeds when the lease lapses.

Sharing. Each ``keep`` counts the workers that reported healthy recently (``worker_heartbeats``)
and aims at a fair share, ``ceil(feeds / workers)``: a worker above its share gives the surplus
back (grid feeds before alerts feeds); a worker below it takes free feeds (never held, released,
or lapsed). A worker at its share still takes a feed that has stayed free for two renewal
intervals (the workers below their share had their turn), so no feed is left unfollowed while the
heartbeats catch up.
"""

import math
from collections.abc import Collection, Sequence
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import SessionMaker
from server.db.models import FeedLease, WorkerHeartbeat, as_utc, utc_now

__all__ = ["FeedLeases", "LeaseLost"]


class LeaseLost(Exception):
    """Another worker took this feed over (our lease expired)."""


class FeedLeases:
    """One worker's view of ``feed_leases``."""

    def __init__(self, sessions: SessionMaker, worker_id: str, lease_s: float) -> None:
        self.sessions = sessions
        self.worker_id = worker_id
        self.lease_s = lease_s

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    async def acquire(self, db: str) -> bool:
        """Take or renew the lease on one feed; False while another worker holds it."""
        now = utc_now()
        expires = now + timedelta(seconds=self.lease_s)
        async with self.sessions() as session, session.begin():
            taken = await session.exec(
                update(FeedLease)
                .where(
                    col(FeedLease.source_db) == db,
                    or_(col(FeedLease.holder) == self.worker_id, col(FeedLease.expires_at) < now),
                )
                .values(holder=self.worker_id, expires_at=expires)
            )
            if taken.rowcount == 1:
                return True
            exists = await session.get(FeedLease, db)
            if exists is not None:
                return False
        try:
            async with self.sessions() as session, session.begin():
                session.add(FeedLease(source_db=db, holder=self.worker_id, expires_at=expires))
        except IntegrityError:
            return False  # another worker inserted it first
        return True

    async def renew(self, session: AsyncSession, db: str) -> None:
        """Renew one lease in the caller's transaction (a page's): raises ``LeaseLost`` when it is
        no longer ours. On PostgreSQL the row lock also queues any other transaction on the feed."""
        renewed = await session.exec(
            update(FeedLease)
            .where(col(FeedLease.source_db) == db, col(FeedLease.holder) == self.worker_id)
            .values(expires_at=utc_now() + timedelta(seconds=self.lease_s))
        )
        if renewed.rowcount != 1:
            raise LeaseLost(db)

    async def release(self, dbs: Collection[str] | None = None) -> None:
        """Give leases back (all of ours by default), so others need not wait for expiry."""
        query = update(FeedLease).where(col(FeedLease.holder) == self.worker_id)
        if dbs is not None:
            if not dbs:
                return
            query = query.where(col(FeedLease.source_db).in_(sorted(dbs)))
        async with self.sessions() as session, session.begin():
            await session.exec(query.values(expires_at=utc_now() - timedelta(seconds=1)))

    async def keep(self, feeds: Sequence[str]) -> list[str]:
        """Renew our live leases among ``feeds`` and move towards a fair share; returns the feeds
        held now, in ``feeds`` order (alerts first)."""
        now = utc_now()
        async with self.sessions() as session, session.begin():
            await session.exec(
                update(FeedLease)
                .where(
                    col(FeedLease.holder) == self.worker_id,
                    col(FeedLease.source_db).in_(feeds),
                    col(FeedLease.expires_at) >= now,  # not one we gave back or let lapse
                )
                .values(expires_at=now + timedelta(seconds=self.lease_s))
            )
            leases = {
                row.source_db: (row.holder, as_utc(row.expires_at))
                for row in (await session.exec(select(FeedLease).where(col(FeedLease.source_db).in_(feeds))))
            }
            others = (
                await session.exec(
                    select(WorkerHeartbeat.worker_id).where(
                        col(WorkerHeartbeat.worker_id) != self.worker_id,
                        col(WorkerHeartbeat.healthy).is_(True),
                        col(WorkerHeartbeat.beat_at) >= now - timedelta(seconds=self.lease_s),
                    )
                )
            ).all()
        share = math.ceil(len(feeds) / (len(others) + 1))
        live = {db: holder for db, (holder, expires) in leases.items() if expires >= now}
        mine = [db for db in feeds if live.get(db) == self.worker_id]
        surplus = set(list(reversed(mine))[: max(0, len(mine) - share)])
        await self.release(surplus)
        held = [db for db in mine if db not in surplus]
        abandoned_before = now - timedelta(seconds=2 * self.renew_every_s)
        for db in feeds:
            if db in live:
                continue
            abandoned = db not in leases or leases[db][1] < abandoned_before
            if (len(held) < share or abandoned) and await self.acquire(db):
                held.append(db)
        order = {db: i for i, db in enumerate(feeds)}
        return sorted(held, key=order.__getitem__)
