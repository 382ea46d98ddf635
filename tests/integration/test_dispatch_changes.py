"""A grid leader cancels a dispatch (wrong department) or reassigns it to another department
(吹哨报到), through HTTP on SQLite and PostgreSQL: audited, deadline recomputed, the department
that lost it no longer sees it as its work, tablets told when the step changes."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel import select

from server.db.models import Case, CaseDispatch, Finding, as_utc
from sync.writeback import publish_statuses, status_doc_id
from tests.support.cases import add_case, add_department_user, miss_deadline
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def _case(stack: Stack, doc: str) -> str:
    case = await add_case(
        stack.runtime.sessions, finding_doc=doc, source_db=stack.settings.couch.grid_db("ZR01")
    )
    return case.id


async def _dispatch(stack: Stack, case_id: str, *departments: str) -> dict[str, Any]:
    async with stack.http("lead1") as lead:
        sent = await lead.post(
            f"/api/cases/{case_id}/dispatches",
            json={"departments": list(departments), "reason": "吹哨派单", "working_days": 3},
        )
    assert sent.status_code == 201, sent.text
    body: dict[str, Any] = sent.json()
    return body


async def _overdue_ids(lead: httpx.AsyncClient) -> list[str]:
    return [c["id"] for c in (await lead.get("/api/cases", params={"overdue": "true"})).json()["data"]]


def _bilingual_refusal(response: httpx.Response, status: int, error: str, zh: str, en: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert zh in body["reason"] and en in body["reason"], body["reason"]


async def test_cancelling_the_only_dispatch_takes_the_case_back_and_off_the_departments_list(
    stack: Stack,
) -> None:
    case_id = await _case(stack, "hazard-wrong-dept")
    await add_department_user(stack, "housing1", "housing")
    sent = await _dispatch(stack, case_id, "housing")
    assert sent["state"] == "coordinating"
    [dispatch] = sent["dispatches"]
    await miss_deadline(stack.runtime.sessions, case_id, dispatch["id"])
    async with stack.runtime.sessions() as session:
        finding = (await session.exec(select(Finding).where(Finding.doc_id == "hazard-wrong-dept"))).one()
    status_before = finding.status_version
    housing = ("housing1", "housing1-password")
    cancel_url = f"/api/cases/{case_id}/dispatches/{dispatch['id']}/cancel"

    async with stack.http() as client:
        listed = (await client.get("/api/cases", auth=housing)).json()["data"]
        assert [c["id"] for c in listed] == [case_id]
        # Role × grid, as for dispatching: departments and coordinators may not, other grids see nothing.
        for who, status in ((housing, 403), (stack.auth("coord"), 403), (stack.auth("lead2"), 404)):
            denied = await client.post(cancel_url, json={"reason": "派错部门"}, auth=who)
            assert denied.status_code == status, (who, denied.text)

    async with stack.http("lead1") as lead:
        assert await _overdue_ids(lead) == [case_id]
        stale = await lead.post(
            cancel_url, json={"reason": "派错部门", "expected_version": sent["version"] - 1}
        )
        _bilingual_refusal(stale, 409, "case_changed", "刷新", "reload")
        no_reason = await lead.post(cancel_url, json={})
        assert no_reason.status_code == 400
        cancelled = await lead.post(
            cancel_url, json={"reason": "派错部门，应由物业处理", "expected_version": sent["version"]}
        )
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        [shown] = body["dispatches"]
        assert (shown["state"], shown["state_label_zh"], shown["state_label_en"]) == (
            "cancelled",
            "已撤销",
            "Cancelled",
        )
        assert shown["cancelled_by"] == "lead1" and shown["cancel_reason"] == "派错部门，应由物业处理"
        assert shown["cancelled_at"].endswith("+08:00") and shown["overdue"] is False
        # Nobody coordinates the case any more: it is back where the dispatch took it from.
        assert body["state"] == "problem_found" and body["version"] == sent["version"] + 1
        events = [(e["action"], e["from_state"], e["to_state"]) for e in body["events"]]
        assert events[-2:] == [
            ("dispatch_cancelled", None, None),
            ("transition", "coordinating", "problem_found"),
        ]
        assert body["events"][-2]["reason"] == "派错部门，应由物业处理"
        assert await _overdue_ids(lead) == []
        again = await lead.post(cancel_url, json={"reason": "再撤一次"})
        _bilingual_refusal(again, 409, "dispatch_cancelled", "已撤销", "already cancelled")
    async with stack.runtime.sessions() as session:
        case = await session.get(Case, case_id)
        finding = (await session.exec(select(Finding).where(Finding.doc_id == "hazard-wrong-dept"))).one()
    assert case is not None and case.open_deadline_at is None
    assert finding.status_version == status_before + 1  # the tablet learns the step changed
    await publish_statuses(stack.runtime.sessions, stack.runtime.couch)
    status = await stack.runtime.couch.get_doc(finding.source_db, status_doc_id("hazard-wrong-dept"))
    assert status["state"] == "problem_found"

    async with stack.http() as client:
        assert (await client.get("/api/cases", auth=housing)).json()["data"] == []
        assert (await client.get(f"/api/cases/{case_id}", auth=housing)).status_code == 404
        for step, payload in (("acknowledge", {}), ("report", {"report": "已处理完毕"})):
            refused = await client.post(
                f"/api/cases/{case_id}/dispatches/{dispatch['id']}/{step}", json=payload, auth=housing
            )
            _bilingual_refusal(refused, 409, "dispatch_cancelled", "已被网格长撤销", "was cancelled")
            assert "派错部门" in refused.json()["reason"]


async def test_reassigning_moves_the_work_and_the_deadline_to_another_department(stack: Stack) -> None:
    case_id = await _case(stack, "hazard-reassign")
    for username, department in (("police1", "police"), ("fire1", "fire"), ("market1", "market")):
        await add_department_user(stack, username, department)
    sent = await _dispatch(stack, case_id, "police", "fire")
    police, fire = (d["id"] for d in sent["dispatches"])
    async with stack.http() as client:
        acknowledged = await client.post(
            f"/api/cases/{case_id}/dispatches/{police}/acknowledge",
            json={},
            auth=("police1", "police1-password"),
        )
        assert acknowledged.status_code == 200, acknowledged.text
        reported = await client.post(
            f"/api/cases/{case_id}/dispatches/{fire}/report",
            json={"report": "消防通道已清理"},
            auth=("fire1", "fire1-password"),
        )
        assert reported.status_code == 200, reported.text
    await miss_deadline(stack.runtime.sessions, case_id, police)
    async with stack.runtime.sessions() as session:
        status_before = (
            await session.exec(select(Finding.status_version).where(Finding.doc_id == "hazard-reassign"))
        ).one()

    async with stack.http("lead1") as lead:
        assert await _overdue_ids(lead) == [case_id]
        version = (await lead.get(f"/api/cases/{case_id}")).json()["version"]
        for dispatch_id, step, payload in (
            (fire, "cancel", {"reason": "撤回"}),
            (fire, "reassign", {"department": "market", "reason": "改派"}),
        ):
            history = await lead.post(f"/api/cases/{case_id}/dispatches/{dispatch_id}/{step}", json=payload)
            _bilingual_refusal(history, 409, "dispatch_reported", "已反馈", "reported")
        url = f"/api/cases/{case_id}/dispatches/{police}/reassign"
        same = await lead.post(url, json={"department": "police", "reason": "改派"})
        _bilingual_refusal(same, 400, "bad_request", "另一个部门", "another department")
        unknown = await lead.post(url, json={"department": "nobody", "reason": "改派"})
        _bilingual_refusal(unknown, 400, "bad_request", "未知", "unknown")
        missing = await lead.post(
            f"/api/cases/{case_id}/dispatches/99999/reassign", json={"department": "market", "reason": "改派"}
        )
        assert missing.status_code == 404
        moved = await lead.post(
            url, json={"department": "market", "reason": "属市场监管职责", "expected_version": version}
        )
        assert moved.status_code == 200, moved.text
        body = moved.json()
        assert body["state"] == "coordinating" and body["version"] == version + 1
        by_id = {d["id"]: d for d in body["dispatches"]}
        old = by_id[police]
        [new] = [d for d in body["dispatches"] if d["id"] not in (police, fire)]
        assert (old["state"], old["reassigned_to"], old["cancel_reason"]) == (
            "cancelled",
            new["id"],
            "属市场监管职责",
        )
        assert (new["department_code"], new["state"], new["reassigned_from"]) == (
            "market",
            "dispatched",
            police,
        )
        assert new["working_days"] == 3 and new["instructions"] == old["instructions"]
        assert datetime.fromisoformat(new["deadline_at"]) > datetime.now(UTC)
        assert by_id[fire]["state"] == "reported"
        events = [e for e in body["events"] if e["action"] in {"dispatch_reassigned", "dispatched"}][-2:]
        assert [(e["action"], e["details"].get("department")) for e in events] == [
            ("dispatched", "market"),
            ("dispatch_reassigned", "police"),
        ]
        assert events[0]["details"]["reassigned_from"] == police
        assert events[1]["details"] == {
            "dispatch": police,
            "department": "police",
            "to_department": "market",
            "new_dispatch": new["id"],
        }
        # The overdue police dispatch is gone; the market's fresh deadline is the case's now.
        assert await _overdue_ids(lead) == []
    async with stack.runtime.sessions() as session:
        case = await session.get(Case, case_id)
        status_after = (
            await session.exec(select(Finding.status_version).where(Finding.doc_id == "hazard-reassign"))
        ).one()
    assert case is not None and case.open_deadline_at is not None
    assert as_utc(case.open_deadline_at) == datetime.fromisoformat(new["deadline_at"])
    assert status_after == status_before  # still 协调协同: nothing new for the tablet

    async with stack.http() as client:
        police_auth = ("police1", "police1-password")
        late = await client.post(
            f"/api/cases/{case_id}/dispatches/{police}/report", json={"report": "已处理"}, auth=police_auth
        )
        _bilingual_refusal(
            late, 409, "dispatch_cancelled", "已改派其他部门", "reassigned to another department"
        )
        assert (await client.get("/api/cases", auth=police_auth)).json()["data"] == []
        market_auth = ("market1", "market1-password")
        assert [c["id"] for c in (await client.get("/api/cases", auth=market_auth)).json()["data"]] == [
            case_id
        ]
        wrong = await client.post(
            f"/api/cases/{case_id}/dispatches/{police}/acknowledge", json={}, auth=market_auth
        )
        assert wrong.status_code == 403  # the old dispatch is not the market's
        taken = await client.post(
            f"/api/cases/{case_id}/dispatches/{new['id']}/acknowledge", json={}, auth=market_auth
        )
        assert taken.status_code == 200, taken.text


async def test_a_report_and_a_cancel_that_cross_are_decided_once(stack: Stack) -> None:
    case_id = await _case(stack, "hazard-cross")
    await add_department_user(stack, "gas1", "gas")
    [dispatch] = (await _dispatch(stack, case_id, "gas"))["dispatches"]
    async with stack.http() as client:
        report, cancel = await asyncio.gather(
            client.post(
                f"/api/cases/{case_id}/dispatches/{dispatch['id']}/report",
                json={"report": "燃气管道已检修"},
                auth=("gas1", "gas1-password"),
            ),
            client.post(
                f"/api/cases/{case_id}/dispatches/{dispatch['id']}/cancel",
                json={"reason": "派错部门"},
                auth=stack.auth("lead1"),
            ),
        )
    assert sorted([report.status_code, cancel.status_code]) == [200, 409], (report.text, cancel.text)
    async with stack.runtime.sessions() as session:
        row = await session.get(CaseDispatch, dispatch["id"])
    assert row is not None
    assert row.state == ("reported" if report.status_code == 200 else "cancelled")
    async with stack.http("lead1") as lead:
        actions = [e["action"] for e in (await lead.get(f"/api/cases/{case_id}")).json()["events"]]
    assert ("dispatch_reported" in actions) != ("dispatch_cancelled" in actions)
