"""Emergency fast path: a missing-person alert or urgent finding reaches every live tablet of its
grid within seconds, and comes before any backlog on a tablet that has been offline."""

import asyncio
import time

import pytest

from tests.conftest import TabletFactory
from tests.support.docs import ZR02_POINT, hazard, missing_person
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_alert_reaches_two_live_tablets_within_seconds(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    colleague = await tablet_factory("vol1b")
    leader = await tablet_factory("lead1")
    other_grid = await tablet_factory("vol2")
    author = await tablet_factory("vol1")
    for tablet in (colleague, leader, other_grid):
        await tablet.pull()
        await tablet.call("live_start", name="live", direction="pull")
    await asyncio.sleep(1.0)  # every live feed is now parked in a longpoll

    alert = missing_person("vol1", doc_id="alert-1", name="张大爷", conditions="阿尔茨海默症")
    await author.put(alert)
    started = time.monotonic()
    pushed = await author.push()
    assert pushed["docs_written"] == 1
    arrivals = await asyncio.gather(
        colleague.call("wait_for", doc_id="alert-1", timeout_ms=10_000),
        leader.call("wait_for", doc_id="alert-1", timeout_ms=10_000),
    )
    latency = time.monotonic() - started
    assert all(doc["name"] == "张大爷" for doc in arrivals)
    assert latency < 5.0, f"push to other tablets took {latency:.2f}s"
    print(f"alert push-to-tablets latency: {latency * 1000:.0f} ms")

    stored = await stack.runtime.couch.get_doc(stack.settings.couch.alert_db("ZR01"), "alert-1")
    assert stored["type"] == "missing_person"
    await asyncio.sleep(0.5)
    with pytest.raises(Exception, match="timeout"):
        await other_grid.call("wait_for", doc_id="alert-1", timeout_ms=500)
    for tablet in (colleague, leader, other_grid):
        state = await tablet.call("live_stop", name="live")
        assert state["errors"] == []


async def test_alert_comes_before_the_backlog(stack: Stack, tablet_factory: TabletFactory) -> None:
    writer = await tablet_factory("vol1")
    for i in range(60):
        await writer.put(hazard("vol1", doc_id=f"backlog-{i:02d}", photo=False))
    await writer.put(hazard("vol1", doc_id="urgent-fire", severity="urgent", photo=False))
    await writer.push()

    async with stack.http("lead1") as leader:
        first_page = (await leader.get("/sync/field/_changes", params={"limit": "5"})).json()
    assert first_page["results"][0]["id"] == "urgent-fire"

    # an alert for another grid written by a ZR01 volunteer goes to that grid's tablets
    await writer.put(missing_person("vol1", doc_id="seen-in-zr02", point=ZR02_POINT))
    result = await writer.push()
    assert result["doc_write_failures"] == 0
    zr02 = await tablet_factory("vol2")
    await zr02.pull()
    assert (await zr02.get("seen-in-zr02"))["type"] == "missing_person"
