"""A campaign coordinator's tablet through the gateway: they keep the installation records of their
grids up to date, whoever filed them, but a volunteer's finding is the volunteer's evidence — their
edit of it is refused, recorded for the leaders, and stays on their tablet."""

import pytest

from tests.conftest import TabletFactory
from tests.support.docs import hazard, installation
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_a_coordinator_updates_installations_but_not_volunteers_findings(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    volunteer = await tablet_factory("vol1")
    await volunteer.put(installation("vol1", doc_id="i-charger", state="planned"))
    await volunteer.put(hazard("vol1", doc_id="h-evidence", note="楼道飞线充电", photo=False))
    assert (await volunteer.push())["docs_written"] == 2

    coordinator = await tablet_factory("coord")
    assert (await coordinator.pull())["ok"] is True
    charger = await coordinator.get("i-charger")
    await coordinator.put({**charger, "state": "installed", "capacity": 12})
    finding = await coordinator.get("h-evidence")
    await coordinator.put({**finding, "note": "已处理"})
    pushed = await coordinator.push()
    assert pushed["docs_written"] == 1 and pushed["doc_write_failures"] == 1
    [error] = pushed["errors"]
    assert error["id"] == "h-evidence" and "协调员只能修改安装记录" in error["message"]

    db = stack.settings.couch.grid_db("ZR01")
    stored = await stack.runtime.couch.get_doc(db, "i-charger")
    assert (stored["state"], stored["capacity"], stored["author"]) == ("installed", 12, "vol1")
    assert (await stack.runtime.couch.get_doc(db, "h-evidence"))["note"] == "楼道飞线充电"
    assert (await coordinator.get("h-evidence"))["note"] == "已处理"  # kept on the tablet
    async with stack.http("lead1") as leader:
        refusals = (await leader.get("/api/refusals")).json()["data"]
    assert [(r["username"], r["doc_id"], r["rule"]) for r in refusals] == [
        ("coord", "h-evidence", "not_own_document")
    ]
