"""Replication through the gateway with the real PouchDB client: push, pull, sync, live, edits
between tablets, deletions, refusals and scope growth. Runs on SQLite and PostgreSQL."""

import asyncio
import base64

import pytest

from field_schema.demo_data import make_png
from tests.conftest import TabletFactory
from tests.support.docs import ZR02_POINT, hazard
from tests.support.stack import Stack
from tests.support.tablet import TabletError

pytestmark = pytest.mark.integration


async def test_two_way_sync_between_two_tablets_of_one_volunteer(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    phone = await tablet_factory("vol1")
    tablet = await tablet_factory("vol1")
    for i in range(3):
        await phone.put(hazard("vol1", doc_id=f"h-{i}", photo=i == 0))
    synced = await phone.sync()
    assert synced["push"]["docs_written"] == 3
    assert synced["push"]["doc_write_failures"] == 0

    pulled = await tablet.pull()
    assert pulled["ok"] is True
    got = await tablet.get("h-0", attachments=True)
    assert base64.b64decode(got["_attachments"]["photo-1.png"]["data"]) == make_png(32, 32, 1)
    # reference data arrives too: grid outlines and the taxonomy
    assert (await tablet.get("grid:ZR01"))["name_zh"] == "真光网格"
    assert len((await tablet.get("taxonomy"))["concerns"]) == 12

    # an edit on the second tablet reaches the first
    doc = await tablet.get("h-1")
    doc["note"] = "已复查：仍在飞线充电"
    await tablet.put(doc)
    assert (await tablet.sync())["push"]["docs_written"] == 1
    await phone.sync()
    assert (await phone.get("h-1"))["note"] == "已复查：仍在飞线充电"


async def test_deletions_replicate_as_tombstones(stack: Stack, tablet_factory: TabletFactory) -> None:
    first = await tablet_factory("vol1")
    second = await tablet_factory("vol1")
    await first.put(hazard("vol1", doc_id="to-delete"))
    await first.sync()
    await second.pull()
    assert (await second.get("to-delete"))["_id"] == "to-delete"

    await first.call("remove", doc_id="to-delete")
    assert (await first.push())["docs_written"] == 1
    await second.pull()
    with pytest.raises(TabletError) as gone:
        await second.get("to-delete")
    assert gone.value.status == 404
    stored = await stack.runtime.couch.all_docs(stack.settings.couch.grid_db("ZR01"), keys=["to-delete"])
    assert stored["rows"][0]["value"]["deleted"] is True


async def test_refused_documents_stay_on_the_tablet_and_the_rest_sync(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    tablet = await tablet_factory("vol1")
    good = [hazard("vol1", doc_id=f"good-{i}") for i in range(2)]
    bad_lat = hazard("vol1", doc_id="bad-lat")
    bad_lat["location"]["lat"] = 123.0
    foreign = hazard("vol1", doc_id="in-zr02", point=ZR02_POINT)
    unknown_concern = hazard("vol1", doc_id="bad-concern", concern="99-01")
    for doc in [*good, bad_lat, foreign, unknown_concern]:
        await tablet.put(doc)

    result = await tablet.push()
    assert result["docs_written"] == 2
    assert result["doc_write_failures"] == 3
    reasons = {e["id"]: e["message"] for e in result["errors"]}
    assert set(reasons) == {"bad-lat", "in-zr02", "bad-concern"}
    assert "location.lat" in reasons["bad-lat"]
    assert "清涧网格" in reasons["in-zr02"]
    assert "concern_code" in reasons["bad-concern"]

    grid_db = stack.settings.couch.grid_db("ZR01")
    stored = await stack.runtime.couch.all_docs(grid_db, keys=["good-0", "good-1", "bad-lat", "in-zr02"])
    assert ["error" in row for row in stored["rows"]] == [False, False, True, True]
    zr02 = await stack.runtime.couch.all_docs(stack.settings.couch.grid_db("ZR02"), keys=["in-zr02"])
    assert "error" in zr02["rows"][0]
    # the refused documents are still on the tablet
    assert (await tablet.get("bad-lat"))["location"]["lat"] == 123.0

    async with stack.http("lead1") as leader:
        listed = (await leader.get("/api/refusals")).json()["data"]
    assert {r["doc_id"]: r["rule"] for r in listed} == {
        "bad-lat": "invalid_document",
        "in-zr02": "outside_scope",
        "bad-concern": "invalid_document",
    }
    assert all(r["username"] == "vol1" and r["device_id"] == "tablet-of-vol1" for r in listed)
    assert {r["doc_id"]: r["field"] for r in listed}["bad-lat"] == "location.lat"
    assert listed[0]["created_at"].endswith("+08:00")
    async with stack.http("lead2") as other_leader:
        # ZR02's leader learns of the one that lies in ZR02, not of the others
        listed_there = (await other_leader.get("/api/refusals")).json()["data"]
    assert [(r["doc_id"], r["grid_code"]) for r in listed_there] == [("in-zr02", "ZR02")]

    # a retried push records nothing twice
    await tablet.push()
    async with stack.http("lead1") as leader:
        assert len((await leader.get("/api/refusals")).json()["data"]) == 3


async def test_volunteer_cannot_edit_another_volunteers_finding(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    owner = await tablet_factory("vol1")
    colleague = await tablet_factory("vol1b")
    await owner.put(hazard("vol1", doc_id="owned"))
    await owner.push()
    await colleague.pull()
    doc = await colleague.get("owned")
    doc["note"] = "篡改"
    await colleague.put(doc)
    result = await colleague.push()
    assert result["doc_write_failures"] == 1
    assert "只能修改自己记录的文档" in result["errors"][0]["message"]
    stored = await stack.runtime.couch.get_doc(stack.settings.couch.grid_db("ZR01"), "owned")
    assert stored["note"] != "篡改"


async def test_volunteer_of_another_grid_pulls_nothing_of_this_grid(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    writer = await tablet_factory("vol1")
    await writer.put(hazard("vol1", doc_id="zr01-only"))
    await writer.push()
    outsider = await tablet_factory("vol2")
    await outsider.pull()
    with pytest.raises(TabletError):
        await outsider.get("zr01-only")
    docs = await outsider.call("all_docs")
    assert all(not row["id"].startswith("zr01") for row in docs["rows"])
    assert any(row["id"] == "grid:ZR02" for row in docs["rows"])


async def test_scope_growth_brings_older_documents(stack: Stack, tablet_factory: TabletFactory) -> None:
    writer = await tablet_factory("vol1")
    await writer.put(hazard("vol1", doc_id="old-zr01-finding"))
    await writer.push()

    grower = await tablet_factory("vol2")
    await grower.pull()
    with pytest.raises(TabletError):
        await grower.get("old-zr01-finding")

    async with stack.http("root") as admin:
        response = await admin.patch("/api/users/vol2", json={"grids": ["ZR02", "ZR01"]})
        assert response.status_code == 200
        assert response.json()["grids"] == ["ZR02", "ZR01"]

    pulled = await grower.pull()
    assert pulled["ok"] is True
    assert (await grower.get("old-zr01-finding"))["author"] == "vol1"


async def test_live_pull_delivers_within_seconds(stack: Stack, tablet_factory: TabletFactory) -> None:
    watcher = await tablet_factory("lead1")
    writer = await tablet_factory("vol1")
    await watcher.pull()
    await watcher.call("live_start", name="live", direction="pull")
    await asyncio.sleep(0.5)  # the live feed is now waiting in a longpoll
    await writer.put(hazard("vol1", doc_id="urgent-1", note="楼道起火隐患"))
    started = asyncio.get_running_loop().time()
    await writer.push()
    delivered = await watcher.call("wait_for", doc_id="urgent-1", timeout_ms=10_000)
    elapsed = asyncio.get_running_loop().time() - started
    assert delivered["note"] == "楼道起火隐患"
    assert elapsed < 5.0
    state = await watcher.call("live_stop", name="live")
    assert state["errors"] == []


async def test_design_documents_never_reach_tablets_and_do_not_end_the_feed(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    reader = await tablet_factory("vol1")
    await reader.pull()  # the checkpoint now sits at the end of every source
    grid_db = stack.settings.couch.grid_db("ZR01")
    # 120 hidden rows fill more than a whole page of 100 before the one visible change
    designs = [{"_id": f"_design/d{i:03d}", "views": {}} for i in range(120)]
    await stack.runtime.couch.bulk_docs(grid_db, designs)
    writer = await tablet_factory("vol1")
    await writer.put(hazard("vol1", doc_id="after-the-designs"))
    await writer.push()

    pulled = await reader.pull(batch_size=100)
    assert pulled["ok"] is True
    assert (await reader.get("after-the-designs"))["author"] == "vol1"
    rows = (await reader.call("all_docs"))["rows"]
    assert not [r for r in rows if r["id"].startswith("_design/")]
