"""Which CouchDB databases a push or a pull asks. The small databases of a user's view (reference
data, alerts) are asked only about the ids they hold (the process's id catalog), so new findings
cost requests to the grid database alone; and documents in the small databases are still found,
whoever wrote them."""

import asyncio
from typing import Any

import pytest

from sync.id_catalog import IdCatalog
from tests.conftest import TabletFactory
from tests.support.docs import hazard, missing_person
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

CATALOG_TTL_S = 1.0


async def _couch_requests(stack: Stack) -> dict[str, dict[str, int]]:
    async with stack.http("root") as admin:
        answer = await admin.get("/api/metrics")
    assert answer.status_code == 200
    requests: dict[str, dict[str, int]] = answer.json()["couch_requests"]
    return requests


def _delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], db: str) -> dict[str, int]:
    old = before.get(db, {})
    return {k: v - old.get(k, 0) for k, v in after.get(db, {}).items() if v - old.get(k, 0)}


async def test_a_push_of_new_findings_asks_the_grid_database_only(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    couch = stack.settings.couch
    tablet = await tablet_factory("vol1")
    for i in range(250):  # three batches of PouchDB's 100
        await tablet.put(hazard("vol1", doc_id=f"new-{i:03d}", photo=False))
    before = await _couch_requests(stack)
    pushed = await tablet.push()
    after = await _couch_requests(stack)
    assert pushed["docs_written"] == 250 and pushed["doc_write_failures"] == 0

    grid = _delta(before, after, couch.grid_db("ZR01"))
    assert grid.get("_bulk_docs") == 3
    assert grid.get("_all_docs") == 3  # one lookup per batch, made by _revs_diff and reused
    assert "_revs_diff" not in grid  # none of the ids existed anywhere
    for small in (couch.alert_db("ZR01"), couch.reference_db):
        # only the catalog's refreshes (ids since its last look) and database info
        assert set(_delta(before, after, small)) <= {"_changes", ""}, small


async def test_an_edit_of_an_existing_finding_is_checked_against_its_stored_author(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    couch = stack.settings.couch
    owner = await tablet_factory("vol1")
    await owner.put(hazard("vol1", doc_id="kept", photo=False))
    await owner.push()
    doc = await owner.get("kept")
    doc["note"] = "复查：已整改 / re-checked: fixed"
    await owner.put(doc)
    before = await _couch_requests(stack)
    assert (await owner.push())["docs_written"] == 1
    grid = _delta(before, await _couch_requests(stack), couch.grid_db("ZR01"))
    assert grid.get("_revs_diff") == 1  # the id exists: its own database is asked for its revisions
    stored = await stack.runtime.couch.get_doc(couch.grid_db("ZR01"), "kept")
    assert stored["_rev"].startswith("2-") and stored["note"].startswith("复查")


async def test_documents_of_the_small_databases_are_found_whoever_wrote_them(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    couch = stack.settings.couch
    author = await tablet_factory("vol1")
    colleague = await tablet_factory("vol1b")

    # An urgent finding lives in the alerts database; its next revision goes there too.
    await author.put(hazard("vol1", doc_id="urgent-1", severity="urgent", photo=False))
    await author.push()
    urgent = await author.get("urgent-1")
    urgent["note"] = "火势扩大 / spreading"
    await author.put(urgent)
    assert (await author.push())["docs_written"] == 1
    in_alerts = await stack.runtime.couch.get_doc(couch.alert_db("ZR01"), "urgent-1")
    assert in_alerts["_rev"].startswith("2-")
    grid_rows = await stack.runtime.couch.all_docs(couch.grid_db("ZR01"), keys=["urgent-1"])
    assert "error" in grid_rows["rows"][0]  # not duplicated into the grid database

    # A colleague's edit of it is refused: its stored author was found in the alerts database.
    await colleague.pull()
    taken = await colleague.get("urgent-1")
    taken["note"] = "篡改 / tampered"
    await colleague.put(taken)
    refused = await colleague.push()
    assert refused["doc_write_failures"] == 1
    assert "只能修改自己记录的文档" in refused["errors"][0]["message"]

    # An alert written into CouchDB by another process (here: the test's own client, which the
    # gateway's catalog never saw) is found once the catalog looks again.
    elsewhere: dict[str, Any] = missing_person("vol1", doc_id="alert-elsewhere", name="李阿姨")
    elsewhere.pop("_attachments", None)
    await stack.runtime.couch.put_doc(couch.alert_db("ZR01"), elsewhere)
    await asyncio.sleep(CATALOG_TTL_S + 0.2)
    await colleague.put(missing_person("vol1b", doc_id="alert-elsewhere", name="冒名 / impostor"))
    clash = await colleague.push()
    assert clash["doc_write_failures"] == 1
    assert "作者字段不可修改" in clash["errors"][0]["message"]
    stored = await stack.runtime.couch.get_doc(couch.alert_db("ZR01"), "alert-elsewhere")
    assert stored["name"] == "李阿姨" and "_conflicts" not in stored

    # ... and it reaches a pull (the alerts feed moved past where the catalog last saw it).
    reader = await tablet_factory("lead1")
    await reader.pull()
    assert (await reader.get("alert-elsewhere"))["name"] == "李阿姨"

    # Reference documents are refused to volunteers (a tablet that never pulled them).
    fresh = await tablet_factory("vol1b")
    await fresh.put({**hazard("vol1b", photo=False), "_id": "schemas"})
    reference = await fresh.push()
    assert reference["doc_write_failures"] == 1
    assert "参考数据" in reference["errors"][0]["message"]


async def test_the_id_catalog_follows_its_database_and_gives_up_when_it_is_large(stack: Stack) -> None:
    couch, db = stack.runtime.couch, stack.settings.couch.alert_db("ZR02")
    catalog = IdCatalog(ttl_s=60, max_ids=3)
    first = await catalog.entry(couch, db)
    assert first is not None and first.ids == set()
    await couch.bulk_docs(db, [{"_id": "a"}, {"_id": "b"}])
    assert (await catalog.entry(couch, db)) is first and first.ids == set()  # a minute may pass unseen
    catalog.note_written(db, ["a"])  # ... but not this process's own writes
    refreshed = await catalog.entry(couch, db)
    assert refreshed is not None and refreshed.ids == {"a", "b"}
    deleted = await couch.bulk_docs(
        db, [{"_id": "b", "_rev": (await couch.get_doc(db, "b"))["_rev"], "_deleted": True}]
    )
    assert "error" not in deleted[0]
    catalog.note_written(db, ["b"])
    assert (await catalog.entry(couch, db)).ids == {"a", "b"}  # type: ignore[union-attr]  # tombstones stay home
    await couch.bulk_docs(db, [{"_id": "c"}, {"_id": "d"}])
    catalog.note_written(db, ["c", "d"])
    assert await catalog.entry(couch, db) is None  # over max_ids: callers ask the database itself
