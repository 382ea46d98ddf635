"""Which CouchDB databases a push or a pull asks. A push batch looks its ids up once (for
``_revs_diff`` and the ``_bulk_docs`` that follows) in the grid database; the small databases are
asked only about ids the process's catalog knows they hold (for an alerts database, a catalog whose
look began after the push arrived). Documents in the small databases are found at once, whoever
wrote them: a colleague's fresh alert can never be taken over, and a live pull reads it without
waiting for the catalog."""

import asyncio
import logging
from typing import Any

import httpx
import pytest

from sync.id_catalog import IdCatalog
from tests.conftest import TabletFactory
from tests.support.docs import hazard, missing_person
from tests.support.stack import AppServer, Stack, app_without_couchdb

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


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
    alerts = _delta(before, after, couch.alert_db("ZR01"))
    # the alerts database: a look at its feed since the last one per batch, no lookup of the ids
    # (and, once per process, its info: how many copies it is kept in)
    assert 1 <= alerts.get("_changes", 0) <= 3 and alerts.get("", 0) <= 1
    assert set(alerts) <= {"_changes", ""}
    # the reference database: only the catalog's refreshes (ids since its last look) and info
    assert set(_delta(before, after, couch.reference_db)) <= {"_changes", ""}


async def test_a_process_reads_the_small_databases_ids_before_it_serves(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """After a restart, the first push of each grid reads its alerts database's feed since
    start-up, not the whole database."""
    couch = stack.settings.couch
    author = await tablet_factory("vol1")
    await author.put(missing_person("vol1", doc_id="alert-before-restart"))
    assert (await author.push())["docs_written"] == 1
    second = AppServer(stack.settings)
    await asyncio.to_thread(second.start)
    try:
        async with httpx.AsyncClient(base_url=second.url, auth=stack.auth("root"), timeout=30) as admin:
            started = (await admin.get("/api/metrics")).json()["couch_requests"]
            # the metrics request itself asks CouchDB nothing: all of this was start-up
            for grid in stack.runtime.grids.grid_codes:
                assert started[couch.alert_db(grid)] == {"": 1, "_changes": 1}, grid
            assert started[couch.reference_db] == {"_changes": 1}
            assert set(started) == {couch.reference_db, *map(couch.alert_db, stack.runtime.grids.grid_codes)}
        async with httpx.AsyncClient(base_url=second.url, auth=stack.auth("vol1"), timeout=30) as tablet:
            # the alert written before start-up is known: its author's edit is a change, not new
            stored = (await tablet.get("/sync/field/alert-before-restart")).json()
            edited = await tablet.put(
                "/sync/field/alert-before-restart", json={**stored, "note": "已找到 / found"}
            )
            assert edited.status_code == 201, edited.text
            assert edited.json()["rev"].startswith("2-")
    finally:
        await asyncio.to_thread(second.stop)


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_a_process_starts_without_couchdb_and_says_so_once(stack: Stack) -> None:
    # on the logger itself: the app's logging set-up replaces the root's handlers (pytest's too)
    said, logger = _Said(), logging.getLogger("gridpatrol.gateway")
    logger.addHandler(said)
    try:
        async with (
            app_without_couchdb(stack.settings) as app,
            httpx.AsyncClient(base_url=app.url, timeout=30) as client,
        ):
            assert (await client.get("/health")).status_code == 503  # serving, CouchDB named as down
    finally:
        logger.removeHandler(said)
    about_catalog = [m for m in said.messages if "id catalog" in m]
    assert len(about_catalog) == 1 and "CouchDB away" in about_catalog[0], said.messages


async def test_a_slow_tablets_bulk_get_is_answered_from_the_page_seconds_later(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    author = await tablet_factory("vol1")
    for i in range(5):
        await author.put(hazard("vol1", doc_id=f"slow-{i}", photo=False))
    assert (await author.push())["docs_written"] == 5
    grid_db = stack.settings.couch.grid_db("ZR01")
    async with stack.http("vol1b") as client:
        page = (await client.get("/sync/field/_changes", params={"style": "all_docs"})).json()
        wanted = [
            {"id": row["id"], "rev": row["changes"][0]["rev"]}
            for row in page["results"]
            if row["id"].startswith("slow-")
        ]
        assert len(wanted) == 5
        await asyncio.sleep(2.5)  # a slow link: PouchDB fetches pages it listed ahead one by one
        before = await _couch_requests(stack)
        answer = (
            await client.post("/sync/field/_bulk_get", params={"revs": "true"}, json={"docs": wanted})
        ).json()
        after = await _couch_requests(stack)
    assert [r["docs"][0]["ok"]["_id"] for r in answer["results"]] == [w["id"] for w in wanted]
    assert all(r["docs"][0]["ok"]["_revisions"]["start"] == 1 for r in answer["results"])
    assert "_bulk_get" not in _delta(before, after, grid_db)


async def test_a_pull_reads_each_first_revision_once(stack: Stack, tablet_factory: TabletFactory) -> None:
    couch = stack.settings.couch
    author = await tablet_factory("vol1")
    for i in range(250):
        await author.put(hazard("vol1", doc_id=f"pulled-{i:03d}", photo=i < 3))
    assert (await author.push())["docs_written"] == 250
    edited = await author.get("pulled-007")
    edited["note"] = "复查 / re-checked"
    await author.put(edited)
    assert (await author.push())["docs_written"] == 1

    reader = await tablet_factory("vol1b")
    before = await _couch_requests(stack)
    assert (await reader.pull())["ok"]
    after = await _couch_requests(stack)
    assert (await reader.get("pulled-007"))["note"] == "复查 / re-checked"
    assert (await reader.get("pulled-001", attachments=True))["_attachments"]["photo-1.png"]["data"]
    assert (
        len((await reader.call("all_docs", options={"startkey": "pulled-", "endkey": "pulled-~"}))["rows"])
        == 250
    )

    # The _changes pages carried the documents; PouchDB's _bulk_get of their first revisions was
    # answered from them, so CouchDB was asked only for the second revision of pulled-007.
    grid = _delta(before, after, couch.grid_db("ZR01"))
    assert grid.get("_changes", 0) >= 3
    assert grid.get("_bulk_get") == 1
    assert grid.get("doc", 0) >= 3  # the photos, streamed from CouchDB


async def test_documents_kept_from_a_page_are_never_shown_to_whom_they_are_hidden(stack: Stack) -> None:
    grid_db = stack.settings.couch.grid_db("ZR01")
    design = await stack.runtime.couch.put_doc(grid_db, {"_id": "_design/ops", "views": {}})
    async with stack.http("root") as admin, stack.http("vol1") as volunteer:
        listed = await admin.get(f"/sync/{stack.settings.gateway.virtual_db}/_changes")
        assert "_design/ops" in [row["id"] for row in listed.json()["results"]]  # admins see them
        asked = await volunteer.post(
            f"/sync/{stack.settings.gateway.virtual_db}/_bulk_get",
            params={"revs": "true"},
            json={"docs": [{"id": "_design/ops", "rev": design["rev"]}]},
        )
    assert asked.status_code == 200
    assert asked.json()["results"][0]["docs"][0]["error"]["error"] == "not_found"


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
    # gateway never saw) is found at once: a colleague cannot claim it in the catalog's blind
    # second, neither as a new document nor as an edit of its revision.
    elsewhere: dict[str, Any] = missing_person("vol1", doc_id="alert-elsewhere", name="李阿姨")
    elsewhere.pop("_attachments", None)
    await colleague.pull()  # the catalog has just looked at the alerts database
    written = await stack.runtime.couch.put_doc(couch.alert_db("ZR01"), elsewhere)
    await colleague.put(missing_person("vol1b", doc_id="alert-elsewhere", name="冒名 / impostor"))
    clash = await colleague.push()
    assert clash["doc_write_failures"] == 1
    assert "作者字段不可修改" in clash["errors"][0]["message"]
    first = written["rev"].split("-", 1)[1]
    takeover = {
        **missing_person("vol1b", doc_id="alert-elsewhere", name="冒名 / impostor"),
        "_rev": "2-" + "a" * 32,
        "_revisions": {"start": 2, "ids": ["a" * 32, first]},
    }
    takeover.pop("_attachments", None)
    async with stack.http("vol1b") as client:
        answer = await client.post("/sync/field/_bulk_docs", json={"docs": [takeover], "new_edits": False})
    assert answer.json()[0]["error"] == "forbidden"
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


async def test_a_current_catalog_has_what_anyone_wrote_before_it_was_asked(stack: Stack) -> None:
    couch, db = stack.runtime.couch, stack.settings.couch.alert_db("ZR02")
    catalog = IdCatalog(ttl_s=60)
    assert (await catalog.current(couch, db)).ids == set()  # type: ignore[union-attr]
    await couch.bulk_docs(db, [{"_id": "written-elsewhere"}])  # by a process that never tells us
    assert (await catalog.entry(couch, db)).ids == set()  # type: ignore[union-attr]  # within its ttl
    looks = couch.requests[(db, "_changes")]
    assert (await catalog.current(couch, db)).ids == {"written-elsewhere"}  # type: ignore[union-attr]
    assert couch.requests[(db, "_changes")] == looks + 1  # the feed since the last look, not a scan
    # Callers that asked while a look was under way share the next one, begun after all of them.
    await couch.bulk_docs(db, [{"_id": "meanwhile"}])
    entries = await asyncio.gather(*(catalog.current(couch, db) for _ in range(5)))
    assert all(e is not None and "meanwhile" in e.ids for e in entries)
    assert couch.requests[(db, "_changes")] <= looks + 3


async def test_a_look_under_way_when_the_database_moves_does_not_count_as_fresh(stack: Stack) -> None:
    couch, db = stack.runtime.couch, stack.settings.couch.alert_db("ZR02")
    catalog = IdCatalog(ttl_s=60)
    looking = asyncio.create_task(catalog.entry(couch, db))
    # The look has begun (its start and the count of moves are taken before its first await); if
    # pouchdb-server happens to serve the write below before the look's _changes, the look sees
    # the document itself and this run cannot tell; served the other way round, a look made fresh
    # wrongly fails it.
    await asyncio.sleep(0)
    await couch.bulk_docs(db, [{"_id": "moved-meanwhile"}])
    catalog.expire([db])  # a longpoll heard the move while the look was under way
    await looking
    # Had the look made the entry fresh, this within-ttl use would skip the new document.
    assert "moved-meanwhile" in (await catalog.entry(couch, db)).ids  # type: ignore[union-attr]


async def test_a_live_pull_and_bulk_get_see_an_alert_another_process_just_wrote(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    couch = stack.settings.couch
    async with stack.http("vol1b") as client:
        since = (await client.get("/sync/field/_changes", params={"since": "0"})).json()["last_seq"]
        waiting = asyncio.create_task(
            client.get(
                "/sync/field/_changes",
                params={"feed": "longpoll", "since": since, "timeout": "20000", "heartbeat": "5000"},
            )
        )
        await asyncio.sleep(0.3)  # parked, with the catalog fresh from the first page
        alert: dict[str, Any] = missing_person("vol1", doc_id="alert-live", name="王大爷")
        alert.pop("_attachments", None)
        started = asyncio.get_running_loop().time()
        await stack.runtime.couch.put_doc(couch.alert_db("ZR01"), alert)
        answer = await asyncio.wait_for(waiting, timeout=15)
        assert [r["id"] for r in answer.json()["results"]] == ["alert-live"]
        assert asyncio.get_running_loop().time() - started < 5  # not the longpoll's 20 s

        # _bulk_get of a document this process never saw in a feed: found, not a batch-breaking miss
        other = missing_person("vol1", doc_id="alert-unseen", name="赵阿姨")
        other.pop("_attachments", None)
        rev = (await stack.runtime.couch.put_doc(couch.alert_db("ZR01"), other))["rev"]
        fetched = await client.post(
            "/sync/field/_bulk_get", json={"docs": [{"id": "alert-unseen", "rev": rev}]}
        )
        assert fetched.json()["results"][0]["docs"][0]["ok"]["name"] == "赵阿姨"
