"""The case API for grid leaders and departments: the five-step loop, dispatch, follow-up, list and
detail, through HTTP on SQLite and PostgreSQL. Cases are written straight into SQL (the worker's
part is tested elsewhere)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from server.db.models import Case, CaseState, Conflict, Finding, Refusal, as_utc
from sync.writeback import publish_statuses, status_doc_id
from tests.support.cases import add_case, add_department_user, miss_deadline
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def _case(stack: Stack, doc: str = "hazard-1", **columns: Any) -> str:
    case = await add_case(
        stack.runtime.sessions,
        finding_doc=doc,
        source_db=stack.settings.couch.grid_db(columns.get("grid") or "ZR01"),
        **columns,
    )
    return case.id


async def _status_version(stack: Stack, doc_id: str) -> int:
    async with stack.runtime.sessions() as session:
        finding = (await session.exec(select(Finding).where(Finding.doc_id == doc_id))).one()
    return finding.status_version


async def _step(client: httpx.AsyncClient, case_id: str, to: str, **extra: Any) -> httpx.Response:
    body = {"to": to, "reason": f"理由：转到 {to}", **extra}
    return await client.post(f"/api/cases/{case_id}/transitions", json=body)


async def test_leader_walks_the_loop_audited_and_written_back(stack: Stack) -> None:
    case_id = await _case(stack, doc="hazard-loop")
    assert await _status_version(stack, "hazard-loop") == 1
    async with stack.http("lead1") as lead:
        no_reason = await lead.post(f"/api/cases/{case_id}/transitions", json={"to": "coordinating"})
        assert no_reason.status_code == 400
        skipped = await _step(lead, case_id, "closed")
        assert skipped.status_code == 409
        assert skipped.json()["error"] == "transition_refused"
        assert "发现问题" in skipped.json()["reason_zh"]
        assert "transition_not_in_loop" in skipped.json()["reason_en"]

        moved = await _step(lead, case_id, "resolving")
        assert moved.status_code == 201, moved.text
        assert moved.json()["state"] == "resolving"
        assert moved.json()["version"] == 1
        assert await _status_version(stack, "hazard-loop") == 2  # the tablet will hear of it

        stale = await _step(lead, case_id, "follow_up", expected_version=0)
        assert stale.status_code == 409
        assert stale.json()["error"] == "case_changed"
        assert (await _step(lead, case_id, "follow_up", expected_version=1)).status_code == 201

        not_yet = await _step(lead, case_id, "closed")
        assert not_yet.status_code == 409
        assert "回访" in not_yet.json()["reason_zh"]
        assert "follow_up_required" in not_yet.json()["reason_en"]
        recorded = await lead.post(
            f"/api/cases/{case_id}/follow-ups",
            json={"method": "phone", "satisfaction": "basically_satisfied", "resident_comment": "已不再飞线"},
        )
        assert recorded.status_code == 201, recorded.text
        assert recorded.json()["follow_ups"][0]["satisfaction_label_zh"] == "基本满意"
        closed = await _step(lead, case_id, "closed")
        assert closed.status_code == 201, closed.text
        detail = closed.json()
        assert detail["allowed_transitions"] == ["reopened"]

    steps = [(e["action"], e["from_state"], e["to_state"]) for e in detail["events"]]
    assert steps == [
        ("created", None, "problem_found"),
        ("transition", "problem_found", "resolving"),
        ("transition", "resolving", "follow_up"),
        ("follow_up", None, None),
        ("transition", "follow_up", "closed"),
    ]
    assert all(e["actor"] == "lead1" for e in detail["events"][1:])
    assert detail["events"][1]["reason"] == "理由：转到 resolving"
    assert [e["details"].get("version") for e in detail["events"] if e["action"] == "transition"] == [1, 2, 4]
    assert detail["version"] == 4  # the follow-up record moved it too
    assert detail["events"][1]["at"].endswith("+08:00")

    # The write-back publishes the new state to the tablet's grid database.
    await stack.runtime.couch.put_doc(stack.settings.couch.grid_db("ZR01"), {"_id": "probe"})
    assert await publish_statuses(stack.runtime.sessions, stack.runtime.couch) == 1
    status = await stack.runtime.couch.get_doc(
        stack.settings.couch.grid_db("ZR01"), status_doc_id("hazard-loop")
    )
    assert status["state"] == "closed"
    assert status["state_label_zh"] == "已办结"


async def test_roles_and_grids_are_checked_on_every_action(stack: Stack) -> None:
    case_id = await _case(stack, doc="hazard-roles")
    async with stack.http("lead2") as foreign:
        assert (await _step(foreign, case_id, "coordinating")).status_code == 404
        assert (await foreign.get(f"/api/cases/{case_id}")).status_code == 404
        dispatch = await foreign.post(
            f"/api/cases/{case_id}/dispatches", json={"departments": ["police"], "reason": "派单处理"}
        )
        assert dispatch.status_code == 404
    async with stack.http("coord") as coordinator:
        assert (await coordinator.get(f"/api/cases/{case_id}")).status_code == 200  # reads
        refused = await _step(coordinator, case_id, "coordinating")
        assert refused.status_code == 403
        assert "只能查看" in refused.json()["reason_zh"]
    async with stack.http("vol1") as volunteer:
        assert (await _step(volunteer, case_id, "coordinating")).status_code == 403
    async with stack.http("root") as admin:
        assert (await _step(admin, case_id, "coordinating")).status_code == 201

    # Two people acting on the same version: exactly one wins.
    async with stack.http("lead1") as lead, stack.http("root") as admin:
        answers = await asyncio.gather(
            _step(lead, case_id, "resolving", expected_version=1),
            _step(admin, case_id, "parked", expected_version=1),
        )
    assert sorted(r.status_code for r in answers) == [201, 409]
    async with stack.http("root") as admin:
        detail = (await admin.get(f"/api/cases/{case_id}")).json()
    assert detail["version"] == 2
    assert len([e for e in detail["events"] if e["action"] == "transition"]) == 2


async def test_joint_dispatch_acknowledge_report_and_overdue(stack: Stack) -> None:
    await add_department_user(stack, "police1", "police")
    await add_department_user(stack, "fire1", "fire")
    case_id = await _case(stack, doc="hazard-joint", summary="兰溪路生鲜店噪声扰民", concern="02-01")
    other_id = await _case(stack, doc="hazard-other")
    async with stack.http() as client:
        sync = await client.get("/sync/field", auth=("police1", "police1-password"))
        assert sync.status_code == 403  # department accounts never sync
        bad = await client.post(
            "/api/users",
            auth=stack.auth("root"),
            json={"username": "nodept", "password": "nodept-password", "role": "department"},
        )
        assert bad.status_code == 400

    async with stack.http("lead1") as lead:
        dispatched = await lead.post(
            f"/api/cases/{case_id}/dispatches",
            json={"departments": ["police", "fire"], "reason": "联合处置", "working_days": 3},
        )
        assert dispatched.status_code == 201, dispatched.text
        body = dispatched.json()
        assert body["state"] == "coordinating"  # dispatching moves the case into 协调协同
        assert [d["department_code"] for d in body["dispatches"]] == ["police", "fire"]
        assert body["dispatches"][0]["department_name_zh"] == "公安派出所"
        assert body["dispatches"][0]["deadline_at"].endswith("T23:59:59+08:00")
        assert body["dispatches"][0]["working_days"] == 3
        again = await lead.post(
            f"/api/cases/{case_id}/dispatches", json={"departments": ["fire"], "reason": "再派"}
        )
        assert again.status_code == 409
        assert again.json()["error"] == "already_dispatched"
    police_dispatch, fire_dispatch = (d["id"] for d in body["dispatches"])

    async with stack.http() as client:
        auth = ("police1", "police1-password")
        listing = await client.get("/api/cases", auth=auth)
        assert [c["id"] for c in listing.json()["data"]] == [case_id]  # only what was dispatched to it
        assert (await client.get(f"/api/cases/{other_id}", auth=auth)).status_code == 404
        wrong = await client.post(
            f"/api/cases/{case_id}/dispatches/{fire_dispatch}/acknowledge", json={}, auth=auth
        )
        assert wrong.status_code == 403
        step = await client.post(
            f"/api/cases/{case_id}/transitions", json={"to": "resolving", "reason": "已处理"}, auth=auth
        )
        assert step.status_code == 403
        ack = await client.post(
            f"/api/cases/{case_id}/dispatches/{police_dispatch}/acknowledge",
            json={"note": "民警已到场"},
            auth=auth,
        )
        assert ack.status_code == 200, ack.text
        assert ack.json()["dispatches"][0]["state"] == "acknowledged"
        assert ack.json()["dispatches"][0]["acknowledged_by"] == "police1"
        report = await client.post(
            f"/api/cases/{case_id}/dispatches/{police_dispatch}/report",
            json={"report": "已约谈店主，调整营业时间"},
            auth=auth,
        )
        assert report.status_code == 200, report.text
        twice = await client.post(
            f"/api/cases/{case_id}/dispatches/{police_dispatch}/report",
            json={"report": "再次反馈"},
            auth=auth,
        )
        assert twice.status_code == 409

    # The fire station misses its deadline.
    await miss_deadline(stack.runtime.sessions, case_id, fire_dispatch)
    async with stack.http("lead1") as lead:
        overdue = (await lead.get("/api/cases", params={"overdue": "true"})).json()
        assert [c["id"] for c in overdue["data"]] == [case_id]
        assert overdue["data"][0]["overdue"] is True
        on_time = (await lead.get("/api/cases", params={"overdue": "false"})).json()
        assert [c["id"] for c in on_time["data"]] == [other_id]
        by_department = (await lead.get("/api/cases", params={"department": "fire"})).json()
        assert [c["id"] for c in by_department["data"]] == [case_id]
        detail = (await lead.get(f"/api/cases/{case_id}")).json()
    states = {d["department_code"]: (d["state"], d["overdue"]) for d in detail["dispatches"]}
    assert states == {"police": ("reported", False), "fire": ("dispatched", True)}
    actions = [e["action"] for e in detail["events"]]
    assert actions.count("dispatched") == 2
    assert "dispatch_acknowledged" in actions and "dispatch_reported" in actions

    # A late report clears the case from the overdue list (and is marked late in the audit trail).
    async with stack.http() as client:
        late = await client.post(
            f"/api/cases/{case_id}/dispatches/{fire_dispatch}/report",
            json={"report": "已检查灭火器"},
            auth=("fire1", "fire1-password"),
        )
        assert late.status_code == 200, late.text
    assert late.json()["events"][-1]["details"]["late"] is True
    async with stack.http("lead1") as lead:
        assert (await lead.get("/api/cases", params={"overdue": "true"})).json()["data"] == []


async def test_dissatisfied_resident_reopens(stack: Stack) -> None:
    case_id = await _case(stack, doc="hazard-reopen", state=CaseState.FOLLOW_UP)
    async with stack.http("lead1") as lead:
        too_early = await lead.post(
            f"/api/cases/{case_id}/follow-ups",
            json={"method": "visit", "satisfaction": "satisfied", "reopen": True},
        )
        assert too_early.status_code == 409  # only a dissatisfied resident reopens
        reopened = await lead.post(
            f"/api/cases/{case_id}/follow-ups",
            json={
                "method": "visit",
                "satisfaction": "dissatisfied",
                "resident_comment": "楼道仍有电瓶车",
                "reopen": True,
            },
        )
        assert reopened.status_code == 201, reopened.text
        assert reopened.json()["state"] == "resolving"
        assert (await _step(lead, case_id, "follow_up")).status_code == 201
        # The earlier follow-up belongs to the earlier round: closing needs a new one.
        assert (await _step(lead, case_id, "closed")).status_code == 409
        plain = await lead.post(
            f"/api/cases/{case_id}/follow-ups", json={"method": "phone", "satisfaction": "satisfied"}
        )
        assert plain.status_code == 201, plain.text
        events = (await lead.get(f"/api/cases/{case_id}")).json()["events"]
        # Without a comment the audit entry still reads in both languages.
        assert [e["reason"] for e in events if e["action"] == "follow_up"][-1] == "满意 / Satisfied"


async def test_list_filters_and_cursor_stability(stack: Stack) -> None:
    base = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    spec = [
        ("ZR01", "ZR01-01", "04-01", CaseState.PROBLEM_FOUND, (121.3860, 31.2600), "楼道飞线充电"),
        ("ZR01", "ZR01-02", "04-02", CaseState.COORDINATING, (121.3890, 31.2600), "电瓶车停放楼道"),
        ("ZR01", "ZR01-05", "04-03", CaseState.RESOLVING, (121.3970, 31.2600), "消防通道被堵"),
        ("ZR02", "ZR02-01", "04-01", CaseState.PROBLEM_FOUND, (121.4000, 31.2600), "飞线充电"),
        ("ZR02", "ZR02-05", "02-01", CaseState.CLOSED, (121.4100, 31.2600), "生鲜店噪声"),
        ("ZR03", "ZR03-01", "01-01", CaseState.PARKED, (121.4130, 31.2600), "乱停乱放"),
    ] * 3
    ids: list[str] = []
    for k, (grid, micro, concern, state, (lon, lat), summary) in enumerate(spec):
        created = base + timedelta(minutes=k // 2)  # pairs share a timestamp: the id breaks the tie
        ids.append(
            await _case(
                stack,
                doc=f"hazard-list-{k}",
                grid=grid,
                micro_grid=micro,
                concern=concern,
                state=state,
                lon=lon,
                lat=lat,
                summary=summary,
                created_at=created,
                note=f"note-{k} 巡查备注",
            )
        )
    async with stack.http("root") as admin:
        seen: list[str] = []
        page = (await admin.get("/api/cases", params={"limit": 4})).json()
        assert page["count"] == len(spec)
        seen += [c["id"] for c in page["data"]]
        newcomer = await _case(
            stack,
            doc="hazard-newcomer",
            grid="ZR06",
            concern="01-02",
            lon=121.42,
            lat=31.245,
            summary="新来的",
        )  # arrives while paging
        while page["next_cursor"]:
            page = (await admin.get("/api/cases", params={"limit": 4, "cursor": page["next_cursor"]})).json()
            seen += [c["id"] for c in page["data"]]
        assert sorted(seen) == sorted(ids)  # nothing repeated, nothing skipped, the newcomer not mixed in
        first = (await admin.get("/api/cases", params={"limit": 1})).json()
        assert first["data"][0]["id"] == newcomer

        async def ids_for(**params: Any) -> set[str]:
            response = await admin.get("/api/cases", params={"limit": 200, **params})
            assert response.status_code == 200, response.text
            return {c["id"] for c in response.json()["data"]}

        def expect(pred: Any) -> set[str]:
            return {ids[k] for k, row in enumerate(spec) if pred(row)}

        assert await ids_for(grid="ZR02") == expect(lambda r: r[0] == "ZR02")
        assert await ids_for(micro_grid="ZR01-05") == expect(lambda r: r[1] == "ZR01-05")
        assert await ids_for(state="parked") == expect(lambda r: r[3] is CaseState.PARKED)
        assert await ids_for(concern="04-01", grid="ZR01") == expect(
            lambda r: r[2] == "04-01" and r[0] == "ZR01"
        )
        assert await ids_for(bbox="121.3850,31.2500,121.3950,31.2700") == expect(lambda r: r[4][0] < 121.395)
        assert await ids_for(q="飞线") == expect(lambda r: "飞线" in r[5])
        assert await ids_for(q="note-7 ") == {ids[7]}  # the finding's note
        assert await ids_for(q="100%") == set()  # LIKE wildcards are literal
        case_no = (await admin.get(f"/api/cases/{ids[3]}")).json()["case_no"]
        assert await ids_for(q=case_no.lower()) == {ids[3]}
        assert (await admin.get("/api/cases", params={"bbox": "121.5,31,121.4,32"})).status_code == 400
        assert (await admin.get("/api/cases", params={"cursor": "bm9wZQ"})).status_code == 400
    async with stack.http("lead1") as lead:
        mine = (await lead.get("/api/cases", params={"limit": 200})).json()
        assert {c["grid_code"] for c in mine["data"]} == {"ZR01"}
        assert (await lead.get("/api/cases", params={"grid": "ZR02"})).status_code == 403


async def test_detail_shows_findings_photos_and_refusals(stack: Stack) -> None:
    case_id = await _case(stack, doc="hazard-detail", note="三楼楼道飞线")
    async with stack.runtime.sessions() as session:
        session.add(
            Refusal(
                username="vol1",
                doc_id="hazard-detail",
                rev="2-def",
                doc_type="hazard",
                grid_code="ZR01",
                rule="invalid_document",
                field="location.lat",
                reason_zh="纬度超出范围",
                reason_en="latitude out of range",
            )
        )
        session.add(
            Refusal(
                username="vol1", doc_id="hazard-elsewhere", rule="outside_scope", reason_zh="x", reason_en="x"
            )
        )
        await session.commit()
    async with stack.http("lead1") as lead:
        detail = (await lead.get(f"/api/cases/{case_id}")).json()
    assert detail["findings"][0]["note"] == "三楼楼道飞线"
    assert detail["findings"][0]["photos"][0]["url"].endswith("/findings/hazard-detail/photos/photo-1.png")
    assert [(r["doc_id"], r["rule"], r["field"]) for r in detail["refusals"]] == [
        ("hazard-detail", "invalid_document", "location.lat")
    ]
    assert detail["refusals"][0]["created_at"].endswith("+08:00")
    assert detail["allowed_transitions"] == ["visit_survey", "coordinating", "resolving", "parked"]
    assert detail["dispatches"] == [] and detail["follow_ups"] == []

    # A department the case is dispatched to reads the case, not the volunteers' refusals or the
    # branches of their conflicts.
    async with stack.runtime.sessions() as session:
        session.add(
            Conflict(
                doc_id="hazard-detail",
                source_db="db",
                case_id=case_id,
                grid_code="ZR01",
                kind="hard",
                status="open",
                winner_rev="2-a",
                leaves_key="2-a 2-b",
                fields=["note"],
                branches=[{"rev": "2-b", "device_id": "tablet-of-vol1", "body": {"note": "x"}}],
            )
        )
        await session.commit()
    await add_department_user(stack, "police1", "police")
    async with stack.http("lead1") as lead:
        dispatched = await lead.post(
            f"/api/cases/{case_id}/dispatches", json={"departments": ["police"], "reason": "派单"}
        )
        assert dispatched.status_code == 201, dispatched.text
        assert len((await lead.get(f"/api/cases/{case_id}")).json()["conflicts"]) == 1
    async with stack.http() as client:
        seen = (await client.get(f"/api/cases/{case_id}", auth=("police1", "police1-password"))).json()
    assert seen["findings"][0]["note"] == "三楼楼道飞线"
    assert seen["refusals"] == [] and seen["conflicts"] == []


async def test_departments_are_the_taxonomy_list_managed_by_admins(stack: Stack) -> None:
    case_id = await _case(stack, doc="hazard-dept", concern="04-05")  # 燃气安全
    async with stack.http("lead1") as lead:
        refused = await lead.post(
            "/api/taxonomy/departments",
            json={"code": "water", "name_zh": "水务所", "name_en": "Water office"},
        )
        assert refused.status_code == 403
    async with stack.http("root") as admin:
        added = await admin.post(
            "/api/taxonomy/departments",
            json={"code": "water", "name_zh": "水务所", "name_en": "Water office"},
        )
        assert added.status_code == 201, added.text
        assert added.json()["department"]["code"] == "water"
        taken = await admin.post(
            "/api/taxonomy/departments", json={"code": "water", "name_zh": "重复", "name_en": "Again"}
        )
        assert taken.status_code == 409
        retired = await admin.patch("/api/taxonomy/departments/water", json={"retired": True})
        assert retired.status_code == 200, retired.text
    async with stack.http("lead1") as lead:
        to_retired = await lead.post(
            f"/api/cases/{case_id}/dispatches", json={"departments": ["water"], "reason": "派单处理"}
        )
        assert to_retired.status_code == 400
        assert "water" in to_retired.json()["reason_en"]
        gas = await lead.post(
            f"/api/cases/{case_id}/dispatches", json={"departments": ["gas"], "reason": "燃气隐患"}
        )
        assert gas.status_code == 201, gas.text
    # No working_days given: the concern's deadline from the taxonomy applies.
    expected = stack.runtime.taxonomy.concerns["04-05"].deadline_working_days
    assert gas.json()["dispatches"][0]["working_days"] == expected


async def test_read_only_roles_cannot_split_or_merge(stack: Stack) -> None:
    """Split and merge check the case through ``CaseReader``: reading roles must not pass there."""
    await add_department_user(stack, "police2", "police")
    case_id = await _case(stack, doc="hazard-split-a")
    other_id = await _case(stack, doc="hazard-split-b")
    async with stack.http("lead1") as lead:
        dispatched = await lead.post(
            f"/api/cases/{case_id}/dispatches", json={"departments": ["police"], "reason": "派单处理"}
        )
        assert dispatched.status_code == 201
    split = {"findings": ["hazard-split-a"], "reason": "不是同一问题"}
    merge = {"other_case_id": other_id, "reason": "同一问题"}
    async with stack.http("coord") as coordinator:
        assert (await coordinator.get(f"/api/cases/{case_id}")).status_code == 200
        assert (await coordinator.post(f"/api/cases/{case_id}/split", json=split)).status_code == 403
        assert (await coordinator.post(f"/api/cases/{case_id}/merge", json=merge)).status_code == 403
    async with stack.http() as client:
        auth = ("police2", "police2-password")
        assert (await client.get(f"/api/cases/{case_id}", auth=auth)).status_code == 200
        assert (await client.post(f"/api/cases/{case_id}/split", json=split, auth=auth)).status_code == 403
    async with stack.http("root") as admin:
        detail = (await admin.get(f"/api/cases/{case_id}")).json()
    assert [f["doc_id"] for f in detail["findings"]] == ["hazard-split-a"]


async def test_every_case_change_moves_updated_at(stack: Stack) -> None:
    """The worker's join cache refreshes candidates from ``cases.updated_at``."""
    await add_department_user(stack, "police1", "police")
    case_id = await _case(stack, doc="hazard-touched")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)

    async def age() -> None:
        async with stack.runtime.sessions() as session:
            await session.exec(update(Case).where(col(Case.id) == case_id).values(updated_at=long_ago))
            await session.commit()

    async def touched() -> bool:
        async with stack.runtime.sessions() as session:
            case = await session.get(Case, case_id)
        assert case is not None
        return datetime.now(UTC) - as_utc(case.updated_at) < timedelta(minutes=5)

    await age()
    async with stack.http("lead1") as lead:
        assert (await _step(lead, case_id, "resolving", expected_version=0)).status_code == 201
    assert await touched()
    await age()
    async with stack.http("lead1") as lead:
        dispatched = await lead.post(
            f"/api/cases/{case_id}/dispatches", json={"departments": ["police"], "reason": "派单处理"}
        )
        assert dispatched.status_code == 201, dispatched.text
    assert await touched()
    await age()
    dispatch_id = dispatched.json()["dispatches"][0]["id"]
    async with stack.http() as client:
        report = await client.post(
            f"/api/cases/{case_id}/dispatches/{dispatch_id}/report",
            json={"report": "已处理"},
            auth=("police1", "police1-password"),
        )
        assert report.status_code == 200, report.text
    assert await touched()
    await age()
    async with stack.http("lead1") as lead:
        assert (await _step(lead, case_id, "follow_up", expected_version=2)).status_code == 201
        await age()
        follow_up = await lead.post(
            f"/api/cases/{case_id}/follow-ups",
            json={
                "method": "phone",
                "satisfaction": "dissatisfied",
                "resident_comment": "没修好",
                "reopen": True,
            },
        )
        assert follow_up.status_code == 201, follow_up.text
        assert follow_up.json()["state"] == "resolving"
    assert await touched()
