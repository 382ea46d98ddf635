"""`gridpatrol tombstones`: deletions stored with a body (before 2026-12-03, or written straight to
CouchDB) are made bare, the old bodies compacted away, and nothing else changes: live documents,
bare tombstones, the cases of withdrawn findings."""

import asyncio
import uuid
from typing import Any

import pytest
from sqlmodel import col, select

from server.db.models import CaseEvent
from sync.couch import CouchClient
from sync.tombstones import bare_tombstones, has_body
from tests.support.compaction import compacted_away
from tests.support.couch_tap import CouchTap
from tests.support.docs import hazard
from tests.support.stack import VENV_GRIDPATROL, Stack, stack_env

pytestmark = pytest.mark.integration


async def _write(couch: CouchClient, db: str, doc: dict[str, Any]) -> str:
    [answer] = await couch.bulk_docs(db, [doc])
    assert answer.get("ok"), answer
    return str(answer["rev"])


async def _leaves(couch: CouchClient, db: str, doc_id: str) -> list[dict[str, Any]]:
    found = await couch.get_doc(db, doc_id, params={"open_revs": "all"})
    return [entry["ok"] for entry in found if "ok" in entry]


async def _withdrawals(stack: Stack, doc_id: str) -> int:
    async with stack.runtime.sessions() as session:
        events = (
            await session.exec(select(CaseEvent).where(col(CaseEvent.action) == "finding_withdrawn"))
        ).all()
    return sum(1 for e in events if e.details.get("finding") == doc_id)


async def _bodied_store(stack: Stack) -> dict[str, str]:
    """In ZR01's database: a merged finding deleted with its body and photo, a document with a deleted
    branch that kept its body, a bare deletion and a live document. Returns id → rev as written."""
    couch, db = stack.runtime.couch, stack.settings.couch.grid_db("ZR01")
    merged = hazard("vol1", doc_id="h-withdrawn", note="飞线充电，已整改")
    merged["_rev"] = await _write(couch, db, merged)
    await stack.run_worker()
    withdrawn = await _write(couch, db, {**merged, "_deleted": True})
    await stack.run_worker()
    assert await _withdrawals(stack, "h-withdrawn") == 1

    base = hazard("vol2", doc_id="h-branch", note="原始", photo=False)
    root = (await _write(couch, db, base)).split("-", 1)[1]
    kept, dropped = f"2-{'a' * 32}", f"2-{'b' * 32}"
    branches = [
        {**base, "note": "留下", "_rev": kept, "_revisions": {"start": 2, "ids": ["a" * 32, root]}},
        {**base, "_deleted": True, "_rev": dropped, "_revisions": {"start": 2, "ids": ["b" * 32, root]}},
    ]
    await couch.bulk_docs(db, branches, new_edits=False)

    bare = hazard("vol1", doc_id="h-bare", photo=False)
    bare_rev = await _write(
        couch, db, {"_id": "h-bare", "_rev": await _write(couch, db, bare), "_deleted": True}
    )
    live_rev = await _write(couch, db, hazard("vol1", doc_id="h-live", photo=False))
    return {"h-withdrawn": withdrawn, "h-branch-dropped": dropped, "h-bare": bare_rev, "h-live": live_rev}


async def test_deletions_with_a_body_are_made_bare_once(stack: Stack) -> None:
    couch, db = stack.runtime.couch, stack.settings.couch.grid_db("ZR01")
    written = await _bodied_store(stack)

    dry = await bare_tombstones(couch, db, write=False)
    assert sorted(dry.with_body) == [
        ("h-branch", written["h-branch-dropped"]),
        ("h-withdrawn", written["h-withdrawn"]),
    ]
    assert dry.made_bare == 0 and not dry.compacted
    assert has_body((await _leaves(couch, db, "h-withdrawn"))[0])  # the dry run wrote nothing

    report = await bare_tombstones(couch, db, page=2)  # pages of two: the scan crosses pages
    assert report.made_bare == 2 and report.left == [] and report.compacted

    [withdrawn] = await _leaves(couch, db, "h-withdrawn")
    assert set(withdrawn) == {"_id", "_rev", "_deleted"} and withdrawn["_rev"].startswith("3-")
    branches = {leaf["_rev"].split("-")[0]: leaf for leaf in await _leaves(couch, db, "h-branch")}
    assert branches["2"]["note"] == "留下"  # the live branch keeps its body and stays the winner
    assert set(branches["3"]) == {"_id", "_rev", "_deleted"}
    assert (await couch.get_doc(db, "h-branch"))["note"] == "留下"
    for doc_id in ("h-bare", "h-live"):
        [leaf] = await _leaves(couch, db, doc_id)
        assert leaf["_rev"] == written[doc_id]

    assert await compacted_away(couch, db, "h-withdrawn", written["h-withdrawn"]), "old body still readable"

    await stack.run_worker()
    assert await _withdrawals(stack, "h-withdrawn") == 1  # not withdrawn a second time
    again = await bare_tombstones(couch, db)
    assert again.with_body == [] and again.made_bare == 0 and not again.compacted


async def test_a_deletion_edited_during_the_run_is_left_for_the_next(stack: Stack) -> None:
    """Someone writes on the deleted leaf between the scan and the write (here a leader's tablet
    undoes the deletion). Their revision wins, the run reports the document as left, and the next
    run has nothing to do: their edit is never overwritten."""
    admin, db = stack.runtime.couch, stack.settings.couch.grid_db("ZR01")
    written = await _bodied_store(stack)
    restored: dict[str, Any] = {}

    async def a_leader_undeletes_it() -> None:
        [tomb] = await _leaves(admin, db, "h-withdrawn")
        assert tomb["_rev"] == written["h-withdrawn"]  # the leaf the run is about to write on
        answer = await admin.put_doc(db, {**tomb, "_deleted": False, "note": "误删，恢复"})
        restored["rev"] = answer["rev"]

    def bare_write(method: str, path: str, body: bytes) -> bool:
        return method == "POST" and path.endswith("/_bulk_docs") and b'"h-withdrawn"' in body

    tap = await CouchTap(
        target=stack.settings.couch.url,
        match=bare_write,
        on_match=a_leader_undeletes_it,
        forward_first=False,
        status=None,
    ).start()
    try:
        settings = stack.settings.couch
        async with CouchClient(tap.url, settings.username, settings.password) as couch:
            report = await bare_tombstones(couch, db, compact=False)
    finally:
        await tap.stop()
    assert tap.hits == 1
    assert report.left == ["h-withdrawn"] and report.made_bare == 1  # the deleted branch elsewhere
    assert "1 edited meanwhile, run again: h-withdrawn" in report.summary()
    [leaf] = await _leaves(admin, db, "h-withdrawn")
    assert leaf["_rev"] == restored["rev"] and leaf["note"] == "误删，恢复"
    again = await bare_tombstones(admin, db, compact=False)
    assert again.with_body == [] and again.left == [] and again.made_bare == 0
    assert (await admin.get_doc(db, "h-withdrawn"))["note"] == "误删，恢复"


async def test_the_command_reports_every_field_database(stack: Stack) -> None:
    await _bodied_store(stack)
    alerts = stack.settings.couch.alert_db("ZR02")
    alert = hazard("vol1", doc_id="h-alert", photo=False)
    await _write(
        stack.runtime.couch,
        alerts,
        {**alert, "_rev": await _write(stack.runtime.couch, alerts, alert), "_deleted": True},
    )

    async def command(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            str(VENV_GRIDPATROL),
            "tombstones",
            *args,
            env=stack_env(stack),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode()

    dry = await command("--dry-run")
    grid_line = next(
        line for line in dry.splitlines() if line.startswith(stack.settings.couch.grid_db("ZR01") + ":")
    )
    assert "带正文的删除记录 2 条" in grid_line and "2 deletions with a body, 0 made bare" in grid_line
    done = await command()
    lines = {line.split(":", 1)[0]: line for line in done.splitlines() if ": " in line}
    assert "2 made bare, compacted" in lines[stack.settings.couch.grid_db("ZR01")]
    assert "1 made bare, compacted" in lines[alerts]
    assert "0 made bare" in lines[stack.settings.couch.grid_db("ZR02")]
    assert "0 deletions with a body" in (await command()).splitlines()[0]


async def test_a_service_account_that_may_not_compact_still_makes_them_bare(stack: Stack) -> None:
    """In production the service account need only be a member of the databases: CouchDB refuses it
    the compaction (401), the tombstones are made bare all the same and the report says so."""
    admin, db = stack.runtime.couch, stack.settings.couch.grid_db("ZR01")
    await _bodied_store(stack)
    member = f"member-{uuid.uuid4().hex[:8]}"
    await admin.request(
        "PUT",
        f"/_users/org.couchdb.user:{member}",
        json={"name": member, "password": "member-pw", "roles": [], "type": "user"},
    )
    security = await admin.request("GET", f"/{db}/_security")
    names = [*security.get("members", {}).get("names", []), member]
    await admin.put_security(db, {**security, "members": {**security.get("members", {}), "names": names}})
    async with CouchClient(stack.settings.couch.url, member, "member-pw") as couch:
        report = await bare_tombstones(couch, db)
    assert report.made_bare == 2 and not report.compacted and report.compaction_refused
    assert "服务账号无权压缩" in report.summary() and "may not compact" in report.summary()
    [withdrawn] = await _leaves(admin, db, "h-withdrawn")
    assert not has_body(withdrawn)
