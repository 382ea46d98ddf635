"""The status outbox shared among workers: each publishes the statuses of the feeds it holds (and
of databases nobody follows any more), a few batches at a time (real CouchDB, SQLite and
PostgreSQL)."""

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from server.db.models import Finding
from sync._following import FeedStats
from sync.couch import CouchNotFound
from sync.worker import ChangeFollower
from sync.writeback import STATUS_BATCH, publish_statuses, status_doc_id
from tests.support.cases import add_case
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def _pending_findings(stack: Stack, homes: dict[str, str]) -> None:
    """Findings (id → database) whose status moved on since it was published (as a leader's step
    leaves them)."""
    for doc_id, source_db in homes.items():
        await add_case(stack.runtime.sessions, finding_doc=doc_id, source_db=source_db)
    async with stack.runtime.sessions() as session:
        moved = update(Finding).where(col(Finding.doc_id).in_(list(homes))).values(status_version=2)
        await session.exec(moved)
        await session.commit()


async def _still_pending(stack: Stack) -> set[str]:
    async with stack.runtime.sessions() as session:
        query = select(Finding.doc_id).where(Finding.status_version > Finding.status_published_version)
        return set((await session.exec(query)).all())


async def test_each_worker_publishes_the_statuses_of_the_feeds_it_holds(stack: Stack) -> None:
    couch, names = stack.runtime.couch, stack.settings.couch
    zr01, zr02 = names.grid_db("ZR01"), names.grid_db("ZR02")
    retired = f"{names.db_prefix}retired_grid"  # a grid taken out of the outlines: no feed any more
    await couch.create_db(retired)
    await _pending_findings(stack, {"a": zr01, "b": zr02, "c": retired})

    first = await publish_statuses(stack.runtime.sessions, couch, others=[zr02])
    assert first == 2
    assert await _still_pending(stack) == {"b"}
    assert (await couch.get_doc(zr01, status_doc_id("a")))["_rev"].startswith("1-")
    assert (await couch.get_doc(retired, status_doc_id("c")))["_rev"].startswith("1-")
    with pytest.raises(CouchNotFound):
        await couch.get_doc(zr02, status_doc_id("b"))

    assert await publish_statuses(stack.runtime.sessions, couch, others=[zr01]) == 1
    assert await _still_pending(stack) == set()
    assert await publish_statuses(stack.runtime.sessions, couch) == 0  # nothing was left behind


async def test_a_follower_publishes_its_share_a_few_batches_at_a_time(stack: Stack) -> None:
    names = stack.settings.couch
    zr01, zr02 = names.grid_db("ZR01"), names.grid_db("ZR02")
    ours = {f"f{i:03d}": zr01 for i in range(STATUS_BATCH + 1)}
    await _pending_findings(stack, {**ours, "theirs": zr02})
    follower = ChangeFollower(stack.runtime)
    assert await follower.acquire(zr01)
    follower.held = [zr01]  # as following leaves it: the feeds whose lease this worker keeps

    stats = FeedStats()
    assert await follower.publish(stats, batches=1, shared=True) is True  # a full batch: maybe more
    assert stats.published == STATUS_BATCH
    assert await follower.publish(stats, batches=1, shared=True) is False
    assert stats.published == STATUS_BATCH + 1
    assert await _still_pending(stack) == {"theirs"}  # another worker's share

    assert await follower.publish(stats) is False  # ``--once``: everything
    assert await _still_pending(stack) == set()
