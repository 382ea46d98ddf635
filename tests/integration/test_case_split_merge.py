"""A grid leader splits what the worker joined, or merges two cases, by hand."""

from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from server.db.models import Case, CaseEvent, CaseLink, Finding
from tests.support.cases import add_case, finding_row, miss_deadline
from tests.support.docs import ZR01_POINT, ZR02_POINT, hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def near(metres_north: float) -> tuple[float, float]:
    return ZR01_POINT[0], ZR01_POINT[1] + metres_north / 110_574


async def write(stack: Stack, *docs: dict[str, Any]) -> list[dict[str, Any]]:
    result = await stack.runtime.couch.bulk_docs(stack.settings.couch.grid_db("ZR01"), list(docs))
    assert all("rev" in r for r in result), result
    return result


async def placed(stack: Stack) -> dict[str, str]:
    async with stack.runtime.sessions() as session:
        rows = (await session.exec(select(Finding.doc_id, Finding.case_id))).all()
    return {doc_id: str(case_id) for doc_id, case_id in rows}


async def test_split_then_merge_back(stack: Stack) -> None:
    revs = await write(
        stack, *[hazard("vol1", doc_id=f"s-{i}", point=near(i * 5), photo=False) for i in range(3)]
    )
    await stack.run_worker()
    case_id = (await placed(stack))["s-0"]
    assert set((await placed(stack)).values()) == {case_id}

    async with stack.http("lead1") as client:
        split = await client.post(
            f"/api/cases/{case_id}/split", json={"findings": ["s-2"], "reason": "另一户"}
        )
        assert split.status_code == 201, split.text
        new_case = split.json()
        assert new_case["moved_findings"] == ["s-2"]
        assert new_case["case_no"].startswith("ZR01-") and new_case["case_no"] != new_case["other_case_no"]
        # all findings, or findings of another case, cannot be split out
        everything = await client.post(f"/api/cases/{case_id}/split", json={"findings": ["s-0", "s-1"]})
        assert everything.status_code == 400
        foreign = await client.post(f"/api/cases/{case_id}/split", json={"findings": ["s-2"]})
        assert foreign.status_code == 400
    assert (await placed(stack))["s-2"] == new_case["case_id"]

    # A later revision of the split finding stays where the leader put it.
    await write(
        stack,
        {**hazard("vol1", doc_id="s-2", point=near(10), photo=False, note="改"), "_rev": revs[2]["rev"]},
    )
    stats = await stack.run_worker()
    assert stats["updated"] == 1
    assert (await placed(stack))["s-2"] == new_case["case_id"]
    status = await stack.runtime.couch.get_doc(stack.settings.couch.grid_db("ZR01"), "status:s-2")
    assert status["case_no"] == new_case["case_no"]  # write-back told the tablet

    async with stack.http("lead2") as client:  # another grid's leader
        denied = await client.post(f"/api/cases/{case_id}/merge", json={"other_case_id": new_case["case_id"]})
        assert denied.status_code == 404
    async with stack.http("vol1") as client:
        denied = await client.post(f"/api/cases/{case_id}/split", json={"findings": ["s-1"]})
        assert denied.status_code == 403

    async with stack.http("lead1") as client:
        merged = await client.post(
            f"/api/cases/{case_id}/merge", json={"other_case_id": new_case["case_id"], "reason": "同一户"}
        )
        assert merged.status_code == 200, merged.text
        assert merged.json()["moved_findings"] == ["s-2"]
        absorbed = (await client.get(f"/api/cases/{new_case['case_id']}")).json()
        assert absorbed["state"] == "closed"
        twice = await client.post(f"/api/cases/{case_id}/merge", json={"other_case_id": new_case["case_id"]})
        assert twice.status_code == 409
    assert set((await placed(stack)).values()) == {case_id}
    async with stack.runtime.sessions() as session:
        kinds = (
            await session.exec(
                select(CaseLink.kind).where(CaseLink.finding_id == "s-2").order_by(col(CaseLink.id))
            )
        ).all()
        actions = (
            await session.exec(select(CaseEvent.action, CaseEvent.actor).order_by(col(CaseEvent.id)))
        ).all()
        absorbed_case = await session.get(Case, new_case["case_id"])
    assert kinds == ["joined", "split", "merged"]
    assert ("split_out", "lead1") in actions and ("split_from", "lead1") in actions
    assert ("merged_from", "lead1") in actions and ("merged_into", "lead1") in actions
    assert absorbed_case is not None and absorbed_case.state == "closed"


async def test_merge_refuses_other_grids(stack: Stack) -> None:
    await write(stack, hazard("vol1", doc_id="g-1", photo=False))
    grid2 = stack.settings.couch.grid_db("ZR02")
    await stack.runtime.couch.bulk_docs(grid2, [hazard("vol2", doc_id="g-2", point=ZR02_POINT, photo=False)])
    await stack.run_worker()
    where = await placed(stack)
    async with stack.http("root") as client:
        response = await client.post(f"/api/cases/{where['g-1']}/merge", json={"other_case_id": where["g-2"]})
        assert response.status_code == 400


async def test_merge_moves_open_dispatches_and_deadline(stack: Stack) -> None:
    survivor = (await add_case(stack.runtime.sessions, finding_doc="d-a", source_db="grid-zr01")).id
    absorbed = (await add_case(stack.runtime.sessions, finding_doc="d-b", source_db="grid-zr01")).id
    async with stack.http("lead1") as lead:
        dispatched = await lead.post(
            f"/api/cases/{absorbed}/dispatches", json={"departments": ["police", "fire"], "reason": "派单"}
        )
        assert dispatched.status_code == 201, dispatched.text
    police, fire = (d["id"] for d in dispatched.json()["dispatches"])
    async with stack.http("root") as admin:
        reported = await admin.post(
            f"/api/cases/{absorbed}/dispatches/{fire}/report", json={"report": "已查"}
        )
        assert reported.status_code == 200, reported.text
    await miss_deadline(stack.runtime.sessions, absorbed, police)  # the police station misses its deadline
    async with stack.http("lead1") as lead:
        overdue = (await lead.get("/api/cases", params={"overdue": "true"})).json()
        assert [c["id"] for c in overdue["data"]] == [absorbed]
        merged = await lead.post(f"/api/cases/{survivor}/merge", json={"other_case_id": absorbed})
        assert merged.status_code == 200, merged.text
        overdue = (await lead.get("/api/cases", params={"overdue": "true"})).json()
        assert [c["id"] for c in overdue["data"]] == [survivor]
        detail = (await lead.get(f"/api/cases/{survivor}")).json()
        old = (await lead.get(f"/api/cases/{absorbed}")).json()
    assert [(d["id"], d["department_code"], d["overdue"]) for d in detail["dispatches"]] == [
        (police, "police", True)
    ]
    assert [d["id"] for d in old["dispatches"]] == [fire]  # the reported one stays as history
    merged_from = [e for e in detail["events"] if e["action"] == "merged_from"]
    assert merged_from[0]["details"]["dispatches"] == [{"dispatch": police, "department": "police"}]
    async with stack.runtime.sessions() as session:
        old_case = await session.get(Case, absorbed)
    assert old_case is not None and old_case.open_deadline_at is None


async def test_split_and_merge_bump_the_case_version(stack: Stack) -> None:
    survivor = await add_case(stack.runtime.sessions, finding_doc="v-a", source_db="grid-zr01")
    absorbed = await add_case(stack.runtime.sessions, finding_doc="v-b", source_db="grid-zr01")
    async with stack.runtime.sessions() as session:
        session.add(finding_row(survivor, doc_id="v-a2", source_db="grid-zr01"))
        await session.commit()
    async with stack.http("lead1") as lead:
        seen = (await lead.get(f"/api/cases/{survivor.id}")).json()["version"]
        split = await lead.post(f"/api/cases/{survivor.id}/split", json={"findings": ["v-a2"]})
        assert split.status_code == 201, split.text
        stale = await lead.post(
            f"/api/cases/{survivor.id}/transitions",
            json={"to": "coordinating", "reason": "协调", "expected_version": seen},
        )
        assert stale.status_code == 409, stale.text
        assert stale.json()["error"] == "case_changed"
        seen = (await lead.get(f"/api/cases/{survivor.id}")).json()["version"]
        seen_absorbed = (await lead.get(f"/api/cases/{absorbed.id}")).json()["version"]
        merged = await lead.post(f"/api/cases/{survivor.id}/merge", json={"other_case_id": absorbed.id})
        assert merged.status_code == 200, merged.text
        stale = await lead.post(
            f"/api/cases/{survivor.id}/transitions",
            json={"to": "coordinating", "reason": "协调", "expected_version": seen},
        )
        assert stale.status_code == 409, stale.text
        absorbed_now = (await lead.get(f"/api/cases/{absorbed.id}")).json()
        assert absorbed_now["version"] == seen_absorbed + 1 and absorbed_now["state"] == "closed"
        fresh = await lead.post(
            f"/api/cases/{survivor.id}/transitions",
            json={"to": "coordinating", "reason": "协调", "expected_version": seen + 1},
        )
        assert fresh.status_code == 201, fresh.text


async def test_merge_refuses_unassigned_cases_of_other_intake_grids(stack: Stack) -> None:
    first = await add_case(stack.runtime.sessions, grid=None, finding_doc="u-1", source_db="grid-zr01")
    second = await add_case(stack.runtime.sessions, grid=None, finding_doc="u-2", source_db="grid-zr02")
    same = await add_case(stack.runtime.sessions, grid=None, finding_doc="u-3", source_db="grid-zr01")
    async with stack.runtime.sessions() as session:
        for case, intake in ((first, "ZR01"), (second, "ZR02"), (same, "ZR01")):
            await session.exec(update(Case).where(col(Case.id) == case.id).values(intake_grid=intake))
        await session.commit()
    async with stack.http("root") as admin:
        refused = await admin.post(f"/api/cases/{first.id}/merge", json={"other_case_id": second.id})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "bad_request"
        assert "接收网格" in refused.text and "intake grid" in refused.text
        allowed = await admin.post(f"/api/cases/{first.id}/merge", json={"other_case_id": same.id})
        assert allowed.status_code == 200, allowed.text
    assert (await placed(stack))["u-2"] == second.id


async def test_split_and_merge_recompute_what_the_cases_show(stack: Stack) -> None:
    """Severity (highest live finding) and location (first live finding) follow the findings a
    split or merge leaves in each case, as after a revision or a withdrawal."""
    await write(
        stack,
        hazard("vol1", doc_id="r-0", point=near(0), photo=False, severity="high"),
        hazard("vol1", doc_id="r-1", point=near(5), photo=False, severity="low"),
        hazard("vol1", doc_id="r-2", point=near(10), photo=False, severity="medium"),
    )
    await stack.run_worker()
    case_id = (await placed(stack))["r-0"]
    assert set((await placed(stack)).values()) == {case_id}
    async with stack.runtime.sessions() as session:
        where = {f.doc_id: (f.lat, f.lon) for f in (await session.exec(select(Finding))).all()}

    async with stack.http("lead1") as client:
        before = (await client.get(f"/api/cases/{case_id}")).json()
        assert before["severity"] == "high" and (before["lat"], before["lon"]) == where["r-0"]
        split = await client.post(
            f"/api/cases/{case_id}/split", json={"findings": ["r-0"], "reason": "另一处飞线"}
        )
        assert split.status_code == 201, split.text
        rest = (await client.get(f"/api/cases/{case_id}")).json()
        new = (await client.get(f"/api/cases/{split.json()['case_id']}")).json()
        assert rest["severity"] == "medium" and (rest["lat"], rest["lon"]) == where["r-1"]
        assert new["severity"] == "high" and (new["lat"], new["lon"]) == where["r-0"]
        listed = {c["id"]: c["severity"] for c in (await client.get("/api/cases")).json()["data"]}
        assert listed == {case_id: "medium", new["id"]: "high"}

        # Merged back, the surviving case shows the highest and the first of all three again.
        merged = await client.post(f"/api/cases/{case_id}/merge", json={"other_case_id": new["id"]})
        assert merged.status_code == 200, merged.text
        back = (await client.get(f"/api/cases/{case_id}")).json()
        assert back["severity"] == "high" and (back["lat"], back["lon"]) == where["r-0"]
