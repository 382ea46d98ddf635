"""Receipts: the gateway stamps when each revision reached it, so that ordering and joining use
the server's receive time even when the worker reads the feed much later."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from server.db.models import Finding, Receipt, as_utc
from sync.receipts import purge_receipts
from tests.conftest import TabletFactory
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def _receipts(stack: Stack) -> dict[tuple[str, str], Receipt]:
    async with stack.runtime.sessions() as session:
        rows = (await session.exec(select(Receipt))).all()
    return {(r.doc_id, r.rev): r for r in rows}


async def test_every_stored_revision_gets_a_receipt_and_refused_ones_none(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    tablet = await tablet_factory("vol1")
    before = datetime.now(UTC)
    for i in range(3):
        await tablet.put(hazard("vol1", doc_id=f"stamped-{i}", photo=False))
    bad = hazard("vol1", doc_id="refused")
    bad["location"]["lat"] = 123.0
    await tablet.put(bad)
    pushed = await tablet.push()
    assert pushed["docs_written"] == 3 and pushed["doc_write_failures"] == 1

    receipts = await _receipts(stack)
    revs = {f"stamped-{i}": (await tablet.get(f"stamped-{i}"))["_rev"] for i in range(3)}
    assert set(receipts) == set(revs.items())
    for receipt in receipts.values():
        assert receipt.username == "vol1"
        assert before - timedelta(seconds=1) <= as_utc(receipt.received_at) <= datetime.now(UTC)

    # A single PUT (new_edits=true: CouchDB names the revision) is stamped with the new revision;
    # the same revisions replayed keep their first receipt.
    async with stack.http("vol1") as client:
        doc = await tablet.get("stamped-0")
        answer = await client.put("/sync/field/stamped-0", json={**doc, "note": "复查 / re-checked"})
        assert answer.status_code == 201
        first = {key: as_utc(r.received_at) for key, r in (await _receipts(stack)).items()}
        replay = [await tablet.get(f"stamped-{i}", revs=True) for i in range(3)]
        again = await client.post("/sync/field/_bulk_docs", json={"docs": replay, "new_edits": False})
        assert again.status_code == 201 and again.json() == []
    receipts = await _receipts(stack)
    assert ("stamped-0", answer.json()["rev"]) in receipts
    assert len(receipts) == 4
    assert {key: as_utc(r.received_at) for key, r in receipts.items() if key in first} == first


async def _backdate(stack: Stack, doc_id: str, days: float) -> datetime:
    at = datetime.now(UTC) - timedelta(days=days)
    async with stack.runtime.sessions() as session, session.begin():
        await session.exec(
            update(Receipt).where(col(Receipt.doc_id) == doc_id).values(received_at=at)  # type: ignore[call-overload]
        )
    return at


async def _findings(stack: Stack) -> dict[str, Finding]:
    async with stack.runtime.sessions() as session:
        return {f.doc_id: f for f in (await session.exec(select(Finding))).all()}


async def test_findings_keep_their_gateway_receive_time_through_a_worker_outage(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """Two nearby findings of one concern pushed four days apart while no worker ran: the worker,
    back, applies both in one pass. With its own clock they would join; with the receipts they
    are two cases, each received when the gateway got it."""
    tablet = await tablet_factory("vol1")
    await tablet.put(hazard("vol1", doc_id="before-outage", photo=False))
    await tablet.push()
    pushed_at = await _backdate(stack, "before-outage", days=4)
    await tablet.put(hazard("vol1", doc_id="after-outage", photo=False))
    await tablet.put(hazard("vol1", doc_id="same-day", photo=False))
    await tablet.push()

    stats = await stack.run_worker()
    assert stats["created"] == 2 and stats["joined"] == 1
    findings = await _findings(stack)
    assert findings["after-outage"].case_id != findings["before-outage"].case_id
    assert findings["same-day"].case_id == findings["after-outage"].case_id  # pushed together: joined
    assert abs((as_utc(findings["before-outage"].received_at) - pushed_at).total_seconds()) < 0.01
    assert await _receipts(stack) == {}  # applied: the page's transaction took them away


async def test_a_receipt_from_a_clock_ahead_is_never_later_than_the_worker(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    tablet = await tablet_factory("vol1")
    await tablet.put(hazard("vol1", doc_id="from-the-future", photo=False))
    await tablet.push()
    await _backdate(stack, "from-the-future", days=-2)  # the gateway's host runs two days ahead
    before = datetime.now(UTC)
    await stack.run_worker()
    received = as_utc((await _findings(stack))["from-the-future"].received_at)
    assert before <= received <= datetime.now(UTC)


async def test_old_receipts_no_page_took_are_purged(stack: Stack) -> None:
    now = datetime.now(UTC)
    async with stack.runtime.sessions() as session, session.begin():
        session.add(
            Receipt(doc_id="stray-old", rev="1-a", received_at=now - timedelta(days=31), username="vol1")
        )
        session.add(
            Receipt(doc_id="stray-new", rev="1-a", received_at=now - timedelta(days=1), username="vol1")
        )
    async with stack.runtime.sessions() as session, session.begin():
        assert await purge_receipts(session, now) == 1
    assert set(await _receipts(stack)) == {("stray-new", "1-a")}
