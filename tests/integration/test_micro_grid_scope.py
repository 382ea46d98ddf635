"""A volunteer scoped to one micro-grid: pulls only that micro-grid's documents (and their own),
and creates documents only there — through the gateway, with the real PouchDB client."""

from typing import Any

import pytest

from server.db.models import Role
from tests.conftest import TabletFactory
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_micro_grid_volunteer_sees_and_writes_only_their_micro_grid(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    home, other_code, other_point = stack.micro_grids_of_zr01()
    await stack.add_user("micro1", Role.VOLUNTEER, [home])

    colleague = await tablet_factory("vol1")
    await colleague.put(hazard("vol1", doc_id="in-home-micro", accuracy_m=1.0))
    await colleague.put(hazard("vol1", doc_id="in-other-micro", point=other_point, accuracy_m=1.0))
    assert (await colleague.push())["docs_written"] == 2

    tablet = await tablet_factory("micro1")
    await tablet.put(hazard("micro1", doc_id="mine-at-home", accuracy_m=1.0))
    await tablet.put(hazard("micro1", doc_id="mine-elsewhere", point=other_point, accuracy_m=1.0))
    pushed = await tablet.push()
    assert pushed["docs_written"] == 1
    assert pushed["doc_write_failures"] == 1
    assert other_code in pushed["errors"][0]["message"]

    assert (await tablet.pull())["ok"] is True
    ids = {row["id"] for row in (await tablet.call("all_docs"))["rows"]}
    assert {"in-home-micro", "mine-at-home"} <= ids
    assert "in-other-micro" not in ids
    # The refused document stays on the tablet for the volunteer to fix or discuss.
    assert "mine-elsewhere" in ids

    async with stack.http("lead1") as leader:
        refusals = (await leader.get("/api/refusals")).json()
    assert [(r["username"], r["doc_id"], r["rule"]) for r in refusals["data"]] == [
        ("micro1", "mine-elsewhere", "outside_scope")
    ]


async def test_a_micro_grid_leader_cannot_change_what_they_cannot_see(stack: Stack) -> None:
    home, _, elsewhere = stack.micro_grids_of_zr01()
    await stack.add_user("microlead", Role.GRID_LEADER, [home])
    theirs = hazard("vol1", doc_id="in-other-micro", point=elsewhere, accuracy_m=1.0, photo=False)
    async with stack.http("vol1") as vol1:
        assert (await vol1.put("/sync/field/in-other-micro", json=theirs)).status_code == 201
    async with stack.http("microlead") as leader:
        assert (await leader.get("/sync/field/in-other-micro")).status_code == 404
        # a branch that would win over the document they cannot see
        branch = dict(theirs, note="改写", _rev="20-" + "a" * 32, _revisions={"start": 20, "ids": ["a" * 32]})
        answer = await leader.post("/sync/field/_bulk_docs", json={"docs": [branch], "new_edits": False})
        assert answer.json()[0]["error"] == "forbidden", answer.text
        assert "微网格" in answer.json()[0]["reason"]
    stored = await stack.runtime.couch.get_doc(stack.settings.couch.grid_db("ZR01"), "in-other-micro")
    assert stored["_rev"].startswith("1-") and stored.get("note") == theirs.get("note")


async def test_a_micro_grid_volunteer_pulls_the_conflicting_branches_they_may_see(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """Two edits of one finding made apart reach the micro-grid volunteer as a conflict on their
    tablet, like anyone of the grid; a branch moved into a micro-grid they cannot see does not."""
    home, _, elsewhere = stack.micro_grids_of_zr01()
    await stack.add_user("micro1", Role.VOLUNTEER, [home])
    couch, db = stack.runtime.couch, stack.settings.couch.grid_db("ZR01")

    async def branched(doc_id: str, loser: dict[str, object]) -> None:
        base = hazard("vol1", doc_id=doc_id, note="原始", accuracy_m=1.0, photo=False)
        [first] = await couch.bulk_docs(db, [base])
        root = first["rev"].split("-", 1)[1]
        winner = {**base, "note": "乙改", "_rev": "2-" + "b" * 32}
        leaves = [dict(winner), {**loser, "_id": doc_id, "_rev": "2-" + "a" * 32}]
        for leaf in leaves:
            leaf["_revisions"] = {"start": 2, "ids": [str(leaf["_rev"])[2:], root]}
        await couch.bulk_docs(db, leaves, new_edits=False)

    await branched("both-here", hazard("vol1", note="甲改", accuracy_m=1.0, photo=False))
    await branched("moved-away", hazard("vol1", note="甲移走", point=elsewhere, accuracy_m=1.0, photo=False))
    await branched("deleted-branch", {"_deleted": True})

    micro = await tablet_factory("micro1")
    assert (await micro.pull())["ok"] is True
    here = await micro.get("both-here", conflicts=True)
    assert (here["_rev"], here["note"]) == ("2-" + "b" * 32, "乙改")
    assert here["_conflicts"] == ["2-" + "a" * 32]
    assert (await micro.get("both-here", rev="2-" + "a" * 32))["note"] == "甲改"
    away = await micro.get("moved-away", conflicts=True)
    assert away["note"] == "乙改" and "_conflicts" not in away
    deleted: Any = await micro.get("deleted-branch", open_revs="all")
    leaves = {leaf["ok"]["_rev"]: leaf["ok"].get("_deleted", False) for leaf in deleted}
    assert leaves == {"2-" + "b" * 32: False, "2-" + "a" * 32: True}

    whole_grid = await tablet_factory("vol1")
    assert (await whole_grid.pull())["ok"] is True
    assert (await whole_grid.get("moved-away", conflicts=True))["_conflicts"] == ["2-" + "a" * 32]
