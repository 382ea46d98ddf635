"""Two real PouchDB tablets edit the same finding offline: the worker detects the conflict, merges
it when different fields changed (soft), keeps it for the grid leader when the same field changed
(hard), and the leader's resolution is written back so that both tablets converge."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from server.db.models import CaseEvent, Conflict, Finding, Role
from tests.conftest import TabletFactory
from tests.support.compaction import compacted_away
from tests.support.conflicts import (
    case_of,
    converged,
    edit,
    hard_conflict,
    two_cases_one_conflicted,
    two_tablets_with,
)
from tests.support.docs import hazard, visit
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_soft_conflict_is_merged_and_tablets_converge(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    doc = hazard("vol1", doc_id="h-soft", note="楼道飞线", photo=False)
    first, second = await two_tablets_with(stack, tablet_factory, doc)
    await edit(first, "h-soft", note="楼道飞线，三楼")  # one changes the note
    await edit(second, "h-soft", severity="high")  # the other the severity
    assert (await first.push())["docs_written"] == 1
    assert (await second.push())["docs_written"] == 1
    stored = await stack.runtime.couch.get_doc(
        stack.settings.couch.grid_db("ZR01"), "h-soft", params={"conflicts": "true"}
    )
    assert len(stored["_conflicts"]) == 1

    stats = await stack.run_worker()
    assert stats["conflict_soft"] == 1
    async with stack.runtime.sessions() as session:
        conflict = (await session.exec(select(Conflict))).one()
        finding = await session.get(Finding, "h-soft")
        events = (await session.exec(select(CaseEvent.action).order_by(col(CaseEvent.id)))).all()
    assert conflict.kind == "soft" and conflict.status == "merged"
    assert conflict.fields == ["note", "severity"]
    assert conflict.result_rev is not None and conflict.result_rev.startswith("3-")
    assert "conflict_merged" in events
    # The merged revision came back through the feed: the case shows both edits.
    assert finding is not None and finding.note == "楼道飞线，三楼" and finding.severity == "high"
    assert finding.rev == conflict.result_rev

    for seen in await converged(stack, "h-soft", first, second):
        assert seen["note"] == "楼道飞线，三楼"
        assert seen["severity"] == "high"
    # Nothing is left to merge: another pass records nothing new.
    assert "conflict_soft" not in await stack.run_worker()


async def test_hard_conflict_waits_for_the_leader_whose_choice_tablets_converge_on(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    doc = hazard("vol1", doc_id="h-hard", note="三楼飞线", photo=False)
    first, second = await two_tablets_with(stack, tablet_factory, doc)
    await edit(first, "h-hard", note="三楼飞线，已劝离")
    await edit(second, "h-hard", note="四楼飞线", severity="high")
    await first.push()
    await second.push()

    stats = await stack.run_worker()
    assert stats["conflict_hard"] == 1
    async with stack.http("lead1") as client:
        listed = (await client.get("/api/conflicts", params={"grid": "ZR01", "status": "open"})).json()
        assert listed["count"] == 1
        conflict = listed["data"][0]
        assert conflict["kind"] == "hard" and conflict["fields"] == ["note"]
        assert conflict["created_at"].endswith("+08:00") and conflict["resolved_at"] is None
        notes = {b["body"]["note"]: b["rev"] for b in conflict["branches"]}
        assert set(notes) == {"三楼飞线，已劝离", "四楼飞线"}
        assert conflict["ancestor"]["note"] == "三楼飞线"
        by_case = (await client.get(f"/api/cases/{conflict['case_id']}/conflicts")).json()
        assert [c["id"] for c in by_case["data"]] == [conflict["id"]]
    # Leaders of other grids and volunteers neither see nor resolve it.
    async with stack.http("lead2") as client:
        assert (await client.get("/api/conflicts")).json()["count"] == 0
        other = await client.post(
            f"/api/conflicts/{conflict['id']}/resolve", json={"choose": notes["四楼飞线"]}
        )
        assert other.status_code == 404
    async with stack.http("vol1") as client:
        assert (await client.get("/api/conflicts")).status_code == 403

    # The leader keeps the first tablet's note but the second tablet's severity, field by field.
    async with stack.http("lead1") as client:
        resolved = await client.post(
            f"/api/conflicts/{conflict['id']}/resolve",
            json={
                "fields": {"note": notes["三楼飞线，已劝离"], "severity": notes["四楼飞线"]},
                "reason": "核实",
            },
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
        settled = resolved.json()
        assert settled["created_at"] == conflict["created_at"]
        assert settled["resolved_at"].endswith("+08:00")  # shown in Shanghai time, stored in UTC
        lag = datetime.now(UTC) - datetime.fromisoformat(settled["resolved_at"])
        assert timedelta(0) <= lag < timedelta(minutes=5)
        again = await client.post(
            f"/api/conflicts/{conflict['id']}/resolve", json={"choose": notes["四楼飞线"]}
        )
        assert again.status_code == 409
    await stack.run_worker()
    async with stack.runtime.sessions() as session:
        finding = await session.get(Finding, "h-hard")
        actions = (await session.exec(select(CaseEvent.action))).all()
    assert finding is not None and finding.note == "三楼飞线，已劝离" and finding.severity == "high"
    assert finding.rev == resolved.json()["result_rev"]
    assert {"conflict_found", "conflict_resolved"} <= set(actions)
    for seen in await converged(stack, "h-hard", first, second):
        assert seen["note"] == "三楼飞线，已劝离"
        assert seen["severity"] == "high"


async def test_leader_chooses_a_whole_branch(stack: Stack, tablet_factory: TabletFactory) -> None:
    doc = hazard("vol1", doc_id="h-choose", note="原始", photo=False)
    first, second = await hard_conflict(stack, tablet_factory, doc)
    async with stack.http("lead1") as client:
        conflict = (await client.get("/api/conflicts")).json()["data"][0]
        rev = next(b["rev"] for b in conflict["branches"] if b["body"]["note"] == "乙")
        bad = await client.post(f"/api/conflicts/{conflict['id']}/resolve", json={"choose": "9-nope"})
        assert bad.status_code == 400
        ok = await client.post(f"/api/conflicts/{conflict['id']}/resolve", json={"choose": rev})
        assert ok.status_code == 200, ok.text
    for seen in await converged(stack, "h-choose", first, second):
        assert seen["note"] == "乙"


async def test_a_micro_grid_leader_resolves_the_conflicts_of_their_micro_grid(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    home, other, _ = stack.micro_grids_of_zr01()
    await stack.add_user("microlead", Role.GRID_LEADER, [home])
    await stack.add_user("otherlead", Role.GRID_LEADER, [other])
    doc = hazard("vol1", doc_id="h-micro", note="原始", accuracy_m=1.0, photo=False)
    first, second = await hard_conflict(stack, tablet_factory, doc)

    async with stack.http("otherlead") as client:
        assert (await client.get("/api/conflicts")).json()["count"] == 0
    async with stack.http("microlead") as client:
        listed = (await client.get("/api/conflicts", params={"grid": "ZR01"})).json()
        assert [c["doc_id"] for c in listed["data"]] == ["h-micro"]
        conflict = listed["data"][0]
        assert (await client.get(f"/api/cases/{conflict['case_id']}/conflicts")).json()["count"] == 1
        assert (await client.get("/api/conflicts", params={"grid": "ZR02"})).status_code == 403
    async with stack.http("otherlead") as client:
        assert (await client.get(f"/api/conflicts/{conflict['id']}")).status_code == 404
        rev = next(b["rev"] for b in conflict["branches"] if b["body"]["note"] == "甲")
        refused = await client.post(f"/api/conflicts/{conflict['id']}/resolve", json={"choose": rev})
        assert refused.status_code == 404
    async with stack.http("microlead") as client:
        ok = await client.post(f"/api/conflicts/{conflict['id']}/resolve", json={"choose": rev})
        assert ok.status_code == 200, ok.text
    for seen in await converged(stack, "h-micro", first, second):
        assert seen["note"] == "甲"


async def test_a_conflict_follows_its_finding_to_the_case_a_leader_moves_it_to(stack: Stack) -> None:
    """The leader of the grid merges a case of another micro-grid into one of home's: the conflict
    of the moved finding is now on the desk of home's micro-grid leader, and listed by its new case."""
    home, other, _ = stack.micro_grids_of_zr01()
    await stack.add_user("microlead", Role.GRID_LEADER, [home])
    await stack.add_user("otherlead", Role.GRID_LEADER, [other])
    cases = await two_cases_one_conflicted(stack, "h-here", "h-there")
    assert (await stack.run_worker())["conflict_hard"] == 1
    assert await case_of(stack) == cases

    async with stack.http("otherlead") as client:
        [conflict] = (await client.get("/api/conflicts")).json()["data"]
    async with stack.http("microlead") as client:
        assert (await client.get("/api/conflicts")).json()["count"] == 0
    async with stack.http("lead1") as client:
        merged = await client.post(
            f"/api/cases/{cases['h-here']}/merge", json={"other_case_id": cases["h-there"]}
        )
        assert merged.status_code == 200, merged.text
        assert (await client.get(f"/api/cases/{cases['h-there']}/conflicts")).json()["count"] == 0
    async with stack.http("microlead") as client:
        listed = (await client.get("/api/conflicts")).json()["data"]
        assert [(c["id"], c["case_id"]) for c in listed] == [(conflict["id"], cases["h-here"])]
        by_case = (await client.get(f"/api/cases/{cases['h-here']}/conflicts")).json()["data"]
        assert [c["id"] for c in by_case] == [conflict["id"]]
    async with stack.http("otherlead") as client:
        assert (await client.get(f"/api/conflicts/{conflict['id']}")).status_code == 404


async def test_conflict_without_its_ancestor_is_hard(stack: Stack) -> None:
    """After compaction the common ancestor's body is gone: nobody can tell who changed what."""
    couch, db = stack.runtime.couch, stack.settings.couch.grid_db("ZR01")
    base = hazard("vol1", doc_id="h-compacted", note="原始", photo=False)
    [first] = await couch.bulk_docs(db, [base])
    root = first["rev"].split("-", 1)[1]
    branches = [
        {**base, "note": note, "_rev": f"2-{tag}", "_revisions": {"start": 2, "ids": [tag, root]}}
        for note, tag in (("甲改备注", "a" * 32), ("乙改等级", "b" * 32))
    ]
    branches[1] = {**branches[1], "note": base["note"], "severity": "high"}  # would be soft with its ancestor
    await couch.bulk_docs(db, branches, new_edits=False)
    await couch.request("POST", f"/{db}/_compact", json={})
    if not await compacted_away(couch, db, "h-compacted", first["rev"]):
        pytest.skip("this CouchDB kept the ancestor's body after compaction")
    stats = await stack.run_worker()
    assert stats["conflict_hard"] == 1
    async with stack.runtime.sessions() as session:
        conflict = (await session.exec(select(Conflict))).one()
    assert conflict.ancestor is None and conflict.status == "open"
    assert set(conflict.fields) == {"note", "severity"}


async def test_conflict_settled_outside_is_closed(stack: Stack, tablet_factory: TabletFactory) -> None:
    doc = hazard("vol1", doc_id="h-elsewhere", note="原始", photo=False)
    await hard_conflict(stack, tablet_factory, doc)
    # someone deletes the losing branch straight in CouchDB
    db = stack.settings.couch.grid_db("ZR01")
    current = await stack.runtime.couch.get_doc(db, "h-elsewhere", params={"conflicts": "true"})
    [loser] = current["_conflicts"]
    await stack.runtime.couch.bulk_docs(db, [{"_id": "h-elsewhere", "_rev": loser, "_deleted": True}])
    rest = {k: v for k, v in current.items() if k != "_conflicts"}
    await stack.runtime.couch.bulk_docs(db, [{**rest, "note": current["note"] + "（核实）"}])
    stats = await stack.run_worker()
    assert stats["conflict_superseded"] == 1
    async with stack.http("lead1") as client:
        assert (await client.get("/api/conflicts", params={"status": "open"})).json()["count"] == 0
        listed = (await client.get("/api/conflicts")).json()["data"]
    assert [c["status"] for c in listed] == ["superseded"]


async def test_conflicts_of_other_field_documents_are_found_too(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """A shop visit edited on two devices: different fields merge; the same field waits for the leader."""
    soft_doc = visit("vol1", doc_id="v-soft", note="兰溪路商铺走访")
    hard_doc = visit("vol1", doc_id="v-hard", note="兰溪路商铺走访")
    first = await tablet_factory("vol1")
    second = await tablet_factory("vol1")
    for doc in (soft_doc, hard_doc):
        await first.put(doc)
    assert (await first.push())["docs_written"] == 2
    assert (await second.pull())["ok"] is True
    await edit(first, "v-soft", note="兰溪路商铺走访，已告知店主")
    await edit(second, "v-soft", address="兰溪路90号")
    await edit(first, "v-hard", outcome="issue_found")
    await edit(second, "v-hard", outcome="no_issue")
    await first.push()
    await second.push()

    stats = await stack.run_worker()
    assert stats["conflict_soft"] == 1 and stats["conflict_hard"] == 1
    async with stack.http("lead1") as client:
        listed = (await client.get("/api/conflicts", params={"status": "open"})).json()
        assert [(c["doc_id"], c["case_id"], c["fields"]) for c in listed["data"]] == [
            ("v-hard", None, ["outcome"])
        ]
        chosen = next(b["rev"] for b in listed["data"][0]["branches"] if b["body"]["outcome"] == "no_issue")
        resolved = await client.post(
            f"/api/conflicts/{listed['data'][0]['id']}/resolve", json={"choose": chosen}
        )
        assert resolved.status_code == 200, resolved.text
    async with stack.http("lead2") as client:  # another grid's leader sees none of it
        assert (await client.get("/api/conflicts")).json()["count"] == 0
    for seen in await converged(stack, "v-soft", first, second):
        assert (seen["note"], seen["address"]) == ("兰溪路商铺走访，已告知店主", "兰溪路90号")
    for seen in await converged(stack, "v-hard", first, second):
        assert seen["outcome"] == "no_issue"
