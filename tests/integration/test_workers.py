"""Workers: two at once share the feeds without double-processing; one killed with SIGKILL
mid-batch and restarted ends exactly where an uninterrupted run ends; a CouchDB that goes away
makes the worker back off, report unhealthy, and resume."""

import asyncio
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from field_schema import load_taxonomy
from field_schema.demo_data import demo_documents
from geo import load_areas
from server.db.models import Case, CaseLink, Finding, FindingRevision
from server.devcouch import LocalCouch
from server.provision import setup
from server.runtime import Runtime
from server.settings import Settings
from sync.worker import ChangeFollower
from tests.support.docs import hazard
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
        extra_env={"GRIDPATROL_WORKER_MAX_BACKOFF": "0.5", "GRIDPATROL_COUCH_TIMEOUT": "2"},
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
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await stack.stop()
        couch.stop()


async def _status(response: Any, code: int) -> bool:
    return bool((await response).status_code == code)
