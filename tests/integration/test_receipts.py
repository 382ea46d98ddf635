"""Receipts: the gateway stamps when each revision reached it, so that ordering and joining use
the server's receive time even when the worker reads the feed much later."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from server.db.models import Receipt, as_utc
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
    # a replayed push stamps nothing twice.
    async with stack.http("vol1") as client:
        doc = await tablet.get("stamped-0")
        answer = await client.put("/sync/field/stamped-0", json={**doc, "note": "复查 / re-checked"})
    assert answer.status_code == 201
    await tablet.push()
    receipts = await _receipts(stack)
    assert ("stamped-0", answer.json()["rev"]) in receipts
    assert len(receipts) == 4
