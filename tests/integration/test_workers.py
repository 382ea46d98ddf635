"""Workers: two at once share the feeds without double-processing; one killed with SIGKILL
mid-batch and restarted ends exactly where an uninterrupted run ends; a CouchDB that goes away
makes the worker back off, report unhealthy, and resume."""

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import func
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from field_schema import load_taxonomy
from field_schema.demo_data import demo_documents
from geo import load_areas
from server.db.models import Case, CaseEvent, CaseLink, FeedLease, Finding, FindingRevision, utc_now
from server.devcouch import LocalCouch
from server.localtime import to_local
from server.provision import setup
from server.runtime import Runtime
from server.settings import Settings
from sync.worker import ChangeFollower, FeedStats
from tests.support.docs import ZR01_POINT, hazard
from tests.support.stack import COUCH_ADMIN, GRID_FILE, VENV_GRIDPATROL, Stack, stack_env

pytestmark = pytest.mark.integration


async def load_demo(stack: Stack, count: int, seed: int = 11) -> int:
    areas = load_areas(GRID_FILE)
    authors = {a.code: [f"vol-{a.code.lower()}-{i}" for i in range(4)] for a in areas if a.parent is None}
    by_db: dict[str, list[dict[str, Any]]] = {}
    for item in demo_documents(
        areas, load_taxonomy(), authors, counts={"hazard": count}, seed=seed, photo_every=0
    ):
        by_db.setdefault(stack.settings.couch.grid_db(item.grid), []).append(item.doc)
    written = 0
    for db, docs in by_db.items():
        for start in range(0, len(docs), 500):
            written += sum(
                1 for a in await stack.runtime.couch.bulk_docs(db, docs[start : start + 500]) if "rev" in a
            )
    return written


async def grouping(runtime: Runtime) -> dict[str, frozenset[str]]:
    """case number → its findings: what the merge produced, independent of generated ids."""
    async with runtime.sessions() as session:
        rows = (await session.exec(select(Case.case_no, Finding.doc_id).join(Finding))).all()
    groups: dict[str, set[str]] = {}
    for case_no, doc_id in rows:
        groups.setdefault(case_no, set()).add(doc_id)
    return {k: frozenset(v) for k, v in groups.items()}


async def reference(stack: Stack, tmp_path: Path) -> dict[str, frozenset[str]]:
    """One uninterrupted worker over the same CouchDB data, into a SQLite database of its own."""
    settings = Settings.from_env(
        {**stack_env(stack), "GRIDPATROL_DATABASE_URL": f"sqlite:///{tmp_path / 'ref.sqlite3'}"}
    )
    await setup(settings, GRID_FILE, load_taxonomy())
    runtime = await Runtime.open(settings)
    try:
        await ChangeFollower(runtime).run_once()
        return await grouping(runtime)
    finally:
        await runtime.close()


# Several workers at once is a PostgreSQL deployment; SQLite deployments run one worker.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_two_workers_apply_every_finding_exactly_once(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    total = await load_demo(stack, 3000)
    other = await Runtime.open(stack.settings)  # its own engine and connections
    try:
        first, second = ChangeFollower(stack.runtime), ChangeFollower(other)
        stats = list(await asyncio.gather(first.run_once(), second.run_once()))
        stats += await asyncio.gather(first.run_once(), second.run_once())  # drain what is left
    finally:
        await other.close()
    assert stats[0].changes > 0 and stats[1].changes > 0, "both workers should have taken feeds"
    merged = sum(s.outcomes.get("created", 0) + s.outcomes.get("joined", 0) for s in stats)
    assert merged == total
    async with stack.runtime.sessions() as session:
        revisions = Counter((await session.exec(select(FindingRevision.doc_id))).all())
        links = Counter((await session.exec(select(CaseLink.finding_id))).all())
        findings = (await session.exec(select(func.count()).select_from(Finding))).one()
        empty = (
            await session.exec(
                select(func.count()).select_from(Case).where(~Case.id.in_(select(Finding.case_id)))
            )  # type: ignore[attr-defined]
        ).one()
    assert findings == total
    assert len(revisions) == total and set(revisions.values()) == {1}
    assert len(links) == total and set(links.values()) == {1}
    assert empty == 0
    assert await grouping(stack.runtime) == await reference(stack, tmp_path)


async def test_worker_killed_mid_batch_resumes_to_the_same_result(stack: Stack, tmp_path: Path) -> None:
    total = await load_demo(stack, 3000, seed=12)
    env = stack_env(
        stack, GRIDPATROL_WORKER_BATCH="25", GRIDPATROL_WORKER_POLL="0.05", GRIDPATROL_WORKER_LEASE="2"
    )
    log = (tmp_path / "worker.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(VENV_GRIDPATROL), "worker", env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        async with stack.runtime.sessions() as session:
            for _ in range(600):
                done = (await session.exec(select(func.count()).select_from(Finding))).one()
                if done >= total // 4:
                    break
                await asyncio.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    async with stack.runtime.sessions() as session:
        at_kill = (await session.exec(select(func.count()).select_from(Finding))).one()
    assert 0 < at_kill < total, f"the kill should land mid-run ({at_kill} of {total})"

    # The killed worker never gave its lease back: the restarted one takes the feed over once it
    # lapses (2 s here, 30 s by default).
    await asyncio.sleep(2.5)
    restarted = await asyncio.create_subprocess_exec(
        str(VENV_GRIDPATROL),
        "worker",
        "--once",
        env={**env, "GRIDPATROL_WORKER_BATCH": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(restarted.communicate(), timeout=300)
    assert restarted.returncode == 0, err.decode()[-2000:]
    async with stack.runtime.sessions() as session:
        findings = (await session.exec(select(func.count()).select_from(Finding))).one()
        revisions = Counter((await session.exec(select(FindingRevision.doc_id))).all())
    assert findings == total, out.decode()[-500:]
    assert set(revisions.values()) == {1}
    assert await grouping(stack.runtime) == await reference(stack, tmp_path)


async def test_couchdb_restart_worker_backs_off_reports_and_resumes(
    couch_server: LocalCouch, database_url: str, tmp_path: Path
) -> None:
    couch = LocalCouch(tmp_path / "own-couch")  # on disk: the data survives the restart
    couch.start()
    couch.ensure_admin(*COUCH_ADMIN)
    stack = await Stack.start(
        couch_url=couch.url,
        database_url=database_url,
        data_dir=tmp_path,
        extra_env={
            "GRIDPATROL_WORKER_MAX_BACKOFF": "0.5",
            "GRIDPATROL_COUCH_TIMEOUT": "2",
            # nothing but the longpolls can wake the worker once it follows again
            "GRIDPATROL_WORKER_POLL": "600",
            "GRIDPATROL_WORKER_LEASE": "600",
        },
    )
    stop = asyncio.Event()
    follower = ChangeFollower(stack.runtime)
    task = asyncio.create_task(follower.run_forever(stop))
    db = stack.settings.couch.grid_db("ZR01")

    async def health() -> httpx.Response:
        async with stack.http() as client:
            return await client.get("/health/worker")

    async def until(predicate: Any, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await predicate():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.1)

    async def merged(doc_id: str) -> bool:
        async with stack.runtime.sessions() as session:
            return await session.get(Finding, doc_id) is not None

    try:
        await stack.runtime.couch.bulk_docs(db, [hazard("vol1", doc_id="before-restart", photo=False)])
        await until(lambda: merged("before-restart"))
        await until(lambda: _status(health(), 200))

        couch.stop()
        await until(lambda: _status(health(), 503))
        body = (await health()).json()
        assert body["workers"][0]["consecutive_errors"] >= 1
        assert body["workers"][0]["last_error"]

        couch.start()
        await stack.runtime.couch.bulk_docs(db, [hazard("vol1", doc_id="after-restart", photo=False)])
        await until(lambda: merged("after-restart"))
        await until(lambda: _status(health(), 200))
        assert (await health()).json()["workers"][0]["consecutive_errors"] == 0

        async def parked() -> bool:  # every feed drained and waiting in a longpoll again
            watcher = follower.watcher
            return watcher is not None and len(follower.held) == 12 and watcher.open == 12

        await until(parked)
        await stack.runtime.couch.bulk_docs(db, [hazard("vol1", doc_id="heard-again", photo=False)])
        await until(lambda: merged("heard-again"))
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await stack.stop()
        couch.stop()


async def _status(response: Any, code: int) -> bool:
    return bool((await response).status_code == code)


async def _lock_waiters(conn: psycopg.AsyncConnection[Any], database: str) -> int:
    """Backends of ``database`` waiting for a lock (a row, a transaction, an advisory lock)."""
    cursor = await conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (database,)
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize("second_feed", ["grid ZR01", "grid ZR02, point in ZR01"])
async def test_two_workers_on_one_problem_at_the_same_instant_open_one_case(
    stack: Stack, database_url: str, second_feed: str
) -> None:
    """Two findings of one concern 3 m apart, one in ZR01's alerts database and one in a grid
    database (ZR01's, or ZR02's with a point inside ZR01), applied by two workers at once: one case.

    The interleaving is forced, not hoped for: the test holds the row of today's ZR01 case-number
    counter, which a page locks only after its join search. Without a lock per (grid, concern) both
    workers search (nothing to join), queue on the counter, and each opens a case once it is let
    go; with it the second worker waits before its search and joins the first one's case. Both
    workers have the scope in their join caches already (a first round), so the second one must
    see the first one's case through the cache's refresh, not a fresh load."""
    couch = stack.settings.couch
    alerts_db = couch.alert_db("ZR01")
    other_db, other_grid = (
        (couch.grid_db("ZR01"), "ZR01") if second_feed == "grid ZR01" else (couch.grid_db("ZR02"), "ZR02")
    )
    spot = ZR01_POINT
    near = (spot[0] + 0.00003, spot[1])  # ~3 m east: well within the concern's 20 m
    other = await Runtime.open(stack.settings)
    first, second = ChangeFollower(stack.runtime), ChangeFollower(other)
    holder = await psycopg.AsyncConnection.connect(database_url.replace("+psycopg", ""), autocommit=True)
    try:
        assert await first.acquire(alerts_db) and await second.acquire(other_db)
        # First round, far from the spot and from each other: both caches load (ZR01, 04-01).
        await stack.runtime.couch.bulk_docs(
            alerts_db, [hazard("vol1", doc_id="warm-alert", point=(121.3880, 31.2580), severity="urgent")]
        )
        await stack.runtime.couch.bulk_docs(
            other_db, [hazard("vol1", doc_id="warm-grid", point=(121.3950, 31.2620))]
        )
        assert await first.process_page(alerts_db, "ZR01", FeedStats()) == 1
        assert await second.process_page(other_db, other_grid, FeedStats()) == 1

        await stack.runtime.couch.bulk_docs(
            alerts_db, [hazard("vol1", doc_id="race-alert", point=spot, severity="urgent", photo=False)]
        )
        await stack.runtime.couch.bulk_docs(
            other_db, [hazard("vol1b", doc_id="race-grid", point=near, photo=False)]
        )
        scope = f"ZR01-{to_local(utc_now(), stack.settings.timezone):%Y%m%d}"
        await holder.execute("BEGIN")
        await holder.execute(
            "INSERT INTO number_counters (scope, last) VALUES (%s, 0) "
            "ON CONFLICT (scope) DO UPDATE SET last = number_counters.last",
            (scope,),
        )
        pages = asyncio.gather(
            first.process_page(alerts_db, "ZR01", FeedStats()),
            second.process_page(other_db, other_grid, FeedStats()),
        )
        database = database_url.rsplit("/", 1)[1]
        deadline = asyncio.get_running_loop().time() + 30
        while await _lock_waiters(holder, database) < 2:
            assert asyncio.get_running_loop().time() < deadline, "both pages should be waiting on a lock"
            assert not pages.done(), "a page finished while the counter was held"
            await asyncio.sleep(0.05)
        await holder.execute("COMMIT")
        assert await asyncio.wait_for(pages, timeout=30) == [1, 1]
    finally:
        await holder.close()
        await other.close()
    async with stack.runtime.sessions() as session:
        rows = await session.exec(
            select(Finding.doc_id, Finding.case_id).where(
                col(Finding.doc_id).in_(["race-alert", "race-grid", "warm-alert", "warm-grid"])
            )
        )
        cases = dict(rows.all())
        events = Counter(
            (
                await session.exec(select(CaseEvent.action).where(CaseEvent.case_id == cases["race-alert"]))
            ).all()
        )
    assert cases["race-alert"] == cases["race-grid"], "two cases opened for one problem"
    assert len(set(cases.values())) == 3  # the two first-round findings stay apart
    assert events == {"created": 1, "finding_joined": 1}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_page_waits_for_a_stuck_lock_at_most_half_a_lease(stack: Stack) -> None:
    """Another transaction (a worker whose host vanished mid-page) keeps the feed's lease row
    locked: the page gives up after half a lease instead of hanging, and succeeds once it is free."""
    db, grid = stack.settings.couch.grid_db("ZR01"), "ZR01"
    await stack.runtime.couch.bulk_docs(db, [hazard("vol1", doc_id="behind-a-lock", photo=False)])
    follower = ChangeFollower(stack.runtime, lease_s=2.0)
    assert await follower.acquire(db)
    async with stack.runtime.sessions() as blocker, blocker.begin():
        await blocker.exec(select(FeedLease).where(col(FeedLease.source_db) == db).with_for_update())
        started = time.monotonic()
        with pytest.raises(DBAPIError, match="lock timeout"):
            await follower.process_page(db, grid, FeedStats())
        assert time.monotonic() - started < 10
    assert await follower.process_page(db, grid, FeedStats()) == 1
