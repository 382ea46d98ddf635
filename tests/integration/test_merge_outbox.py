"""Soft conflict merges never lose their record: the worker records the merge in SQL first, writes
it to CouchDB after that commit, and marks it merged after the write. A ``gridpatrol worker``
process is killed (SIGKILL) at the worst moments — right after CouchDB stored the merge, and just
before it would have — and another worker resumes: one conflict record, one event, tablets
converge. Real pouchdb-server, real PouchDB tablets, real SQLite and PostgreSQL."""

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from server.db.models import CaseEvent, Conflict, Finding
from server.runtime import Runtime
from server.settings import Settings
from sync.merge_outbox import MAX_MERGE_ATTEMPTS, settle_pending
from sync.worker import ChangeFollower
from tests.conftest import TabletFactory
from tests.support.conflicts import converged, edit
from tests.support.couch_tap import CouchTap, merge_write
from tests.support.docs import hazard, visit
from tests.support.stack import VENV_GRIDPATROL, Stack, stack_env
from tests.support.tablet import Tablet

pytestmark = pytest.mark.integration

LEASE_S = 2.0
"""The killed worker's feed leases and merge claims lapse after this."""


async def _soft_conflict(stack: Stack, tablet_factory: TabletFactory, *doc_ids: str) -> tuple[Tablet, Tablet]:
    """For each finding, one tablet changes the note and the other the severity: soft conflicts."""
    first = await tablet_factory("vol1")
    second = await tablet_factory("vol1")
    for doc_id in doc_ids:
        await first.put(hazard("vol1", doc_id=doc_id, note="楼道飞线", photo=False))
    assert (await first.push())["docs_written"] == len(doc_ids)
    await stack.run_worker()
    assert (await second.pull())["ok"] is True
    for doc_id in doc_ids:
        await edit(first, doc_id, note="楼道飞线，三楼")
        await edit(second, doc_id, severity="high")
    assert (await first.push())["docs_written"] == len(doc_ids)
    assert (await second.push())["docs_written"] == len(doc_ids)
    return first, second


async def _kill_worker_at_merge(stack: Stack, tmp_path: Path, *, after_write: bool) -> CouchTap:
    """Run ``gridpatrol worker`` through a tap on CouchDB; SIGKILL it when it writes its first
    merge: once CouchDB has stored it (``after_write``) or before CouchDB sees it."""
    process: asyncio.subprocess.Process | None = None

    async def kill() -> None:
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()

    tap = await CouchTap(
        target=stack.settings.couch.url, match=merge_write(), on_match=kill, forward_first=after_write
    ).start()
    env = stack_env(
        stack,
        GRIDPATROL_COUCH_URL=tap.url,
        GRIDPATROL_WORKER_LEASE=str(LEASE_S),
        GRIDPATROL_WORKER_POLL="0.05",
    )
    with (tmp_path / "worker.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(VENV_GRIDPATROL),
            "worker",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await asyncio.wait_for(process.wait(), timeout=120)
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
            await tap.stop()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "worker.log").read_text()[-2000:]
    assert tap.hits == 1
    return tap


async def _refusing_merges(stack: Stack, status: int) -> tuple[CouchTap, Runtime]:
    """A worker runtime whose merge writes never reach CouchDB: the tap answers ``status``."""

    tap = await CouchTap(
        target=stack.settings.couch.url,
        match=merge_write(),
        forward_first=False,
        once=False,
        status=status,
    ).start()
    return tap, await Runtime.open(Settings.from_env(stack_env(stack, GRIDPATROL_COUCH_URL=tap.url)))


async def _rows(stack: Stack, doc_id: str) -> tuple[list[Conflict], list[CaseEvent]]:
    async with stack.runtime.sessions() as session:
        conflicts = list(
            (
                await session.exec(
                    select(Conflict).where(Conflict.doc_id == doc_id).order_by(col(Conflict.id))
                )
            ).all()
        )
        events = list(
            (
                await session.exec(
                    select(CaseEvent)
                    .where(col(CaseEvent.action).like("conflict_%"))
                    .order_by(col(CaseEvent.id))
                )
            ).all()
        )
    return conflicts, [e for e in events if e.details.get("finding") == doc_id]


async def _couch_doc(stack: Stack, doc_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = await stack.runtime.couch.get_doc(
        stack.settings.couch.grid_db("ZR01"), doc_id, params={"conflicts": "true"}
    )
    return doc


async def _live_leaves(stack: Stack, doc_id: str) -> list[str]:
    answer = await stack.runtime.couch.request(
        "GET",
        f"/{stack.settings.couch.grid_db('ZR01')}/{doc_id}",
        params={"open_revs": "all"},
        headers={"Accept": "application/json"},
    )
    leaves = [item["ok"] for item in answer if "ok" in item]
    return sorted(str(leaf["_rev"]) for leaf in leaves if not leaf.get("_deleted"))


async def _shown_as_pending(stack: Stack, conflict_id: int, case_id: str) -> None:
    async with stack.http("lead1") as client:
        listed = (await client.get("/api/conflicts", params={"status": "merge_pending"})).json()
        assert [c["id"] for c in listed["data"]] == [conflict_id]
        pending = listed["data"][0]
        assert (pending["status_label_zh"], pending["status_label_en"]) == (
            "自动合并待写回",
            "Automatic merge pending",
        )
        assert pending["merge_rev"] is not None and pending["result_rev"] is None
        detail = (await client.get(f"/api/cases/{case_id}")).json()
        assert [(c["id"], c["status"]) for c in detail["conflicts"]] == [(conflict_id, "merge_pending")]
        refused = await client.post(
            f"/api/conflicts/{conflict_id}/resolve", json={"choose": pending["winner_rev"]}
        )
        assert refused.status_code == 409
        assert "自动合并" in refused.json()["reason"] and "merged automatically" in refused.json()["reason"]


async def test_merge_stored_in_couchdb_but_not_marked_is_marked_once_on_resume(
    stack: Stack, tablet_factory: TabletFactory, tmp_path: Path
) -> None:
    first, second = await _soft_conflict(stack, tablet_factory, "h-kill-after")
    await _kill_worker_at_merge(stack, tmp_path, after_write=True)

    # CouchDB has the merge; SQL has the conflict as pending with that very revision; no event yet.
    stored = await _couch_doc(stack, "h-kill-after")
    assert "_conflicts" not in stored
    assert (stored["note"], stored["severity"]) == ("楼道飞线，三楼", "high")
    [pending], events = await _rows(stack, "h-kill-after")
    assert pending.status == "merge_pending" and pending.kind == "soft"
    assert pending.merge_rev == stored["_rev"]
    assert events == []
    assert pending.id is not None and pending.case_id is not None
    await _shown_as_pending(stack, pending.id, pending.case_id)

    await asyncio.sleep(LEASE_S + 0.5)  # the killed worker's leases and claim lapse
    stats = await stack.run_worker()
    assert stats["conflict_merged"] == 1
    [merged], events = await _rows(stack, "h-kill-after")
    assert merged.id == pending.id and merged.status == "merged"
    assert merged.result_rev == stored["_rev"] and merged.resolved_by == "system:worker"
    assert [(e.action, e.details["result_rev"]) for e in events] == [("conflict_merged", stored["_rev"])]
    async with stack.runtime.sessions() as session:
        finding = await session.get(Finding, "h-kill-after")
    assert finding is not None and finding.rev == stored["_rev"] and finding.severity == "high"
    for seen in await converged(stack, "h-kill-after", first, second):
        assert (seen["note"], seen["severity"]) == ("楼道飞线，三楼", "high")

    # Nothing is left to do: later passes record nothing more.
    again = await stack.run_worker()
    assert not {k for k in again if k.startswith("conflict_")}
    assert len((await _rows(stack, "h-kill-after"))[1]) == 1
    async with stack.http("lead1") as client:
        listed = (await client.get("/api/conflicts")).json()["data"]
    assert [(c["status"], c["status_label_zh"], c["status_label_en"]) for c in listed] == [
        ("merged", "已自动合并", "Merged automatically")
    ]


async def test_merge_recorded_but_never_written_is_written_on_resume(
    stack: Stack, tablet_factory: TabletFactory, tmp_path: Path
) -> None:
    first, second = await _soft_conflict(stack, tablet_factory, "h-kill-before")
    await _kill_worker_at_merge(stack, tmp_path, after_write=False)

    assert len((await _couch_doc(stack, "h-kill-before"))["_conflicts"]) == 1  # nothing written
    [pending], events = await _rows(stack, "h-kill-before")
    assert pending.status == "merge_pending" and events == []

    await asyncio.sleep(LEASE_S + 0.5)
    stats = await stack.run_worker()
    assert stats["conflict_merged"] == 1
    stored = await _couch_doc(stack, "h-kill-before")
    assert "_conflicts" not in stored and stored["_rev"] == pending.merge_rev
    [merged], events = await _rows(stack, "h-kill-before")
    assert merged.status == "merged" and merged.result_rev == stored["_rev"]
    assert [e.action for e in events] == ["conflict_merged"]
    for seen in await converged(stack, "h-kill-before", first, second):
        assert (seen["note"], seen["severity"]) == ("楼道飞线，三楼", "high")


async def test_documents_that_moved_on_before_the_merge_are_decided_again(
    stack: Stack, tablet_factory: TabletFactory, tmp_path: Path
) -> None:
    """Two soft conflicts are recorded, the worker dies before writing either; meanwhile one is
    settled straight in CouchDB and the other is edited again on a tablet."""
    first, second = await _soft_conflict(stack, tablet_factory, "h-elsewhere", "h-again")
    await _kill_worker_at_merge(stack, tmp_path, after_write=False)
    for doc_id in ("h-elsewhere", "h-again"):
        assert [c.status for c in (await _rows(stack, doc_id))[0]] == ["merge_pending"]

    db = stack.settings.couch.grid_db("ZR01")
    current = await _couch_doc(stack, "h-elsewhere")
    [loser] = current["_conflicts"]
    await stack.runtime.couch.bulk_docs(db, [{"_id": "h-elsewhere", "_rev": loser, "_deleted": True}])
    await edit(first, "h-again", note="楼道飞线，三楼东侧")  # its branch moves on
    assert (await first.push())["docs_written"] == 1

    await asyncio.sleep(LEASE_S + 0.5)
    stats = await stack.run_worker()
    assert stats["conflict_superseded"] == 2 and stats["conflict_merged"] == 1

    [settled], events = await _rows(stack, "h-elsewhere")
    assert settled.status == "superseded" and settled.result_rev == current["_rev"]
    assert [e.action for e in events] == ["conflict_superseded"]
    assert "_conflicts" not in await _couch_doc(stack, "h-elsewhere")

    old, new = (await _rows(stack, "h-again"))[0]
    events = (await _rows(stack, "h-again"))[1]
    assert (old.status, new.status) == ("superseded", "merged")
    assert [(e.action, e.details["conflict"]) for e in events] == [
        ("conflict_superseded", old.id),
        ("conflict_merged", new.id),
    ]
    stored = await _couch_doc(stack, "h-again")
    assert stored["_rev"] == new.result_rev and old.merge_rev not in await _live_leaves(stack, "h-again")
    for seen in await converged(stack, "h-again", first, second):
        assert (seen["note"], seen["severity"]) == ("楼道飞线，三楼东侧", "high")
    for seen in await converged(stack, "h-elsewhere", first, second):
        assert seen["_rev"] == current["_rev"]


async def test_two_workers_settling_one_pending_merge_write_it_once(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """A merge CouchDB did not take (the tap answers 503) stays pending with its reason; then two
    workers settle it at once, each with a claim that lapses at once, so both may write: the
    revision is the same whoever writes it, and only one marks it."""
    first, second = await _soft_conflict(stack, tablet_factory, "h-twice")

    tap, tapped = await _refusing_merges(stack, 503)
    try:
        stats = await ChangeFollower(tapped).run_once()
    finally:
        await tapped.close()
        await tap.stop()
    assert stats.outcomes["conflict_soft"] == 1 and stats.outcomes["conflict_merge_retry"] >= 1
    [pending], _ = await _rows(stack, "h-twice")
    # CouchDB answering 503 is away, not refusing: nothing counts towards giving the merge up
    assert pending.status == "merge_pending" and pending.attempts == 0 and tap.hits >= 1
    assert pending.last_error is not None and "503" in pending.last_error and pending.claimed_by is None
    async with stack.http("lead1") as client:
        shown = (await client.get(f"/api/conflicts/{pending.id}")).json()
    assert shown["status"] == "merge_pending" and shown["last_error"] == pending.last_error

    other = await Runtime.open(stack.settings)  # its own engine and CouchDB client
    try:
        db = stack.settings.couch.grid_db("ZR01")
        results = await asyncio.gather(
            *(
                settle_pending(runtime.sessions, runtime.couch, db, holder=holder, lease_s=0)
                for runtime, holder in ((stack.runtime, "worker-a"), (other, "worker-b"))
            )
        )
    finally:
        await other.close()
    assert sum(r.get("conflict_merged", 0) for r in results) == 1
    [merged], events = await _rows(stack, "h-twice")
    assert merged.status == "merged" and merged.result_rev == pending.merge_rev
    assert [e.action for e in events] == ["conflict_merged"]
    assert await _live_leaves(stack, "h-twice") == [pending.merge_rev]  # one merged revision, no twin branch
    for seen in await converged(stack, "h-twice", first, second):
        assert (seen["note"], seen["severity"]) == ("楼道飞线，三楼", "high")


async def test_a_merge_couchdb_keeps_refusing_goes_to_the_leader(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    first, second = await _soft_conflict(stack, tablet_factory, "h-refused")

    tap, tapped = await _refusing_merges(stack, 400)
    try:
        for _ in range(MAX_MERGE_ATTEMPTS):
            await ChangeFollower(tapped).run_once()
            [row], _ = await _rows(stack, "h-refused")
            if row.status != "merge_pending":
                break
    finally:
        await tapped.close()
        await tap.stop()
    [row], events = await _rows(stack, "h-refused")
    assert row.status == "open" and row.attempts == MAX_MERGE_ATTEMPTS == tap.hits
    assert [e.action for e in events] == ["conflict_found"]
    assert "网格长裁决" in events[0].reason and "the grid leader decides" in events[0].reason
    async with stack.http("lead1") as client:
        shown = (await client.get("/api/conflicts", params={"status": "open"})).json()["data"]
        assert [(c["id"], c["status_label_en"]) for c in shown] == [(row.id, "Waiting for the grid leader")]
        winner = shown[0]["winner_rev"]
        resolved = await client.post(f"/api/conflicts/{row.id}/resolve", json={"choose": winner})
        assert resolved.status_code == 200, resolved.text
    for seen in await converged(stack, "h-refused", first, second):
        assert seen["_rev"] == resolved.json()["result_rev"]


async def test_a_following_worker_retries_a_pending_merge_on_a_quiet_feed(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """A shop visit edited on two tablets (a visit has no case, so no status document follows it
    into the feed). The first merge write meets a CouchDB that is away (503); nothing else changes
    on the feed, so no page comes to retry it: the following worker settles it at its next lease
    renewal."""
    first = await tablet_factory("vol1")
    second = await tablet_factory("vol1")
    await first.put(visit("vol1", _id="v-quiet"))
    assert (await first.push())["docs_written"] == 1
    await stack.run_worker()
    assert (await second.pull())["ok"] is True
    await edit(first, "v-quiet", address="兰溪路90号")
    await edit(second, "v-quiet", outcome="issue_found")
    assert (await first.push())["docs_written"] == 1
    assert (await second.push())["docs_written"] == 1

    tap = await CouchTap(
        target=stack.settings.couch.url,
        match=merge_write(),
        forward_first=False,
        status=503,
    ).start()
    runtime = await Runtime.open(Settings.from_env(stack_env(stack, GRIDPATROL_COUCH_URL=tap.url)))
    stop = asyncio.Event()
    follower = ChangeFollower(runtime, lease_s=1.5)
    following = asyncio.create_task(follower.run_forever(stop))
    try:
        for _ in range(200):
            rows, _ = await _rows(stack, "v-quiet")
            if rows and rows[0].status == "merged":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(following, timeout=15)
        await runtime.close()
        await tap.stop()
    [merged], _ = await _rows(stack, "v-quiet")
    assert tap.hits == 1  # the one write that met the 503
    assert merged.status == "merged"
    for seen in await converged(stack, "v-quiet", first, second):
        assert (seen["address"], seen["outcome"]) == ("兰溪路90号", "issue_found")
