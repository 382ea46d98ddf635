"""Findings join open cases of the same concern nearby, with their evidence; clocks never matter.
Runs against SQLite and PostgreSQL, with documents written to the grid database of a real
CouchDB-compatible server and merged by the worker."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from server.db.models import Case, CaseEvent, CaseLink, CaseState, FeedCheckpoint, Finding
from sync.worker import ChangeFollower
from tests.conftest import TabletFactory
from tests.support.docs import ZR01_POINT, ZR02_POINT, hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def near(metres_north: float, point: tuple[float, float] = ZR01_POINT) -> tuple[float, float]:
    return point[0], point[1] + metres_north / 110_574


async def write(stack: Stack, *docs: dict[str, Any]) -> list[dict[str, Any]]:
    db = stack.settings.couch.grid_db("ZR01")
    result = await stack.runtime.couch.bulk_docs(db, list(docs))
    assert all("rev" in r for r in result), result
    return result


async def cases_by_finding(stack: Stack) -> dict[str, str]:
    async with stack.runtime.sessions() as session:
        rows = (await session.exec(select(Finding.doc_id, Finding.case_id))).all()
    return {doc_id: str(case_id) for doc_id, case_id in rows}


async def test_nearby_finding_joins_with_evidence_and_others_open_cases(stack: Stack) -> None:
    await write(stack, hazard("vol1", doc_id="h-a", point=near(0), photo=False))
    assert (await stack.run_worker())["created"] == 1
    await write(
        stack,
        hazard("vol1b", doc_id="h-b", point=near(12), photo=False),  # 12 m: within 20 m of 04-01
        hazard("vol1b", doc_id="h-far", point=near(60), photo=False),  # too far
        hazard("vol1b", doc_id="h-other", point=near(5), concern="04-03", photo=False),  # other concern
    )
    stats = await stack.run_worker()
    assert stats["joined"] == 1
    assert stats["created"] == 2
    placed = await cases_by_finding(stack)
    assert placed["h-b"] == placed["h-a"]
    assert len({placed["h-a"], placed["h-far"], placed["h-other"]}) == 3

    async with stack.runtime.sessions() as session:
        link = (await session.exec(select(CaseLink).where(CaseLink.finding_id == "h-b"))).one()
        events = (
            await session.exec(
                select(CaseEvent).where(CaseEvent.case_id == placed["h-a"]).order_by(col(CaseEvent.id))
            )
        ).all()
    assert link.kind == "joined"
    assert link.matched_finding == "h-a"
    assert link.author == "vol1b" and link.matched_author == "vol1"
    assert link.distance_m is not None and 11 < link.distance_m < 13
    assert link.gap_s is not None and link.gap_s >= 0
    assert link.radius_m == 20
    assert [e.action for e in events] == ["created", "finding_joined"]
    assert events[1].details["matched_finding"] == "h-a"
    assert events[1].details["author"] == "vol1b"

    # The leader sees one case holding both findings, and the joined finding's tablet gets its status.
    async with stack.http("lead1") as client:
        body = (await client.get("/api/cases")).json()
    assert body["count"] == 3
    shared = next(c for c in body["data"] if c["id"] == placed["h-a"])
    assert [f["doc_id"] for f in shared["findings"]] == ["h-a", "h-b"]
    status = await stack.runtime.couch.get_doc(stack.settings.couch.grid_db("ZR01"), "status:h-b")
    assert status["case_id"] == placed["h-a"]


async def test_closed_case_and_old_case_are_not_joined(stack: Stack) -> None:
    await write(stack, hazard("vol1", doc_id="h-closed", point=near(0), photo=False))
    await write(stack, hazard("vol1", doc_id="h-old", point=near(0), concern="04-03", photo=False))
    await stack.run_worker()
    placed = await cases_by_finding(stack)
    async with stack.runtime.sessions() as session, session.begin():
        await session.exec(
            update(Case).where(col(Case.id) == placed["h-closed"]).values(state=CaseState.CLOSED)  # type: ignore[call-overload]
        )
        # received four days ago: outside the default 72-hour window
        await session.exec(
            update(Finding)  # type: ignore[call-overload]
            .where(col(Finding.doc_id) == "h-old")
            .values(received_at=datetime.now(UTC) - timedelta(days=4))
        )
    await write(
        stack,
        hazard("vol1b", doc_id="h-after-close", point=near(3), photo=False),
        hazard("vol1b", doc_id="h-after-window", point=near(3), concern="04-03", photo=False),
    )
    stats = await stack.run_worker()
    assert stats["created"] == 2 and stats.get("joined", 0) == 0
    placed = await cases_by_finding(stack)
    assert placed["h-after-close"] != placed["h-closed"]
    assert placed["h-after-window"] != placed["h-old"]


async def test_a_tablet_clock_a_year_off_neither_reorders_nor_hides(stack: Stack) -> None:
    now = datetime.now(UTC)
    # Pushed first, from a tablet whose clock is a year ahead.
    await write(
        stack,
        hazard(
            "vol1",
            doc_id="h-future",
            point=near(0),
            photo=False,
            observed_at=(now + timedelta(days=365)).isoformat(),
        ),
    )
    await stack.run_worker()
    # Then from a tablet a year behind, and one with the right time: both are the same problem.
    await write(
        stack,
        hazard(
            "vol1b",
            doc_id="h-past",
            point=near(4),
            photo=False,
            observed_at=(now - timedelta(days=365)).isoformat(),
        ),
    )
    await stack.run_worker()
    await write(stack, hazard("vol1b", doc_id="h-now", point=near(8), photo=False))
    await stack.run_worker()

    placed = await cases_by_finding(stack)
    assert placed["h-past"] == placed["h-future"] == placed["h-now"]
    async with stack.runtime.sessions() as session:
        links = {
            link.finding_id: link
            for link in (await session.exec(select(CaseLink).order_by(col(CaseLink.id)))).all()
        }
    # The case was opened by the first finding *received*, whatever the device clocks said.
    assert links["h-future"].kind == "created"
    assert links["h-past"].kind == "joined" and links["h-past"].gap_s is not None
    assert 0 <= links["h-past"].gap_s < 3600  # server receive times, not the year between device clocks
    async with stack.http("lead1") as client:
        body = (await client.get("/api/cases")).json()
    assert body["count"] == 1
    findings = body["data"][0]["findings"]
    assert [f["doc_id"] for f in findings] == ["h-future", "h-past", "h-now"]  # receive order
    assert findings[1]["observed_at"].startswith(str(now.year - 1))  # kept and shown as reported


async def test_revisions_update_and_deletes_withdraw_without_moving_findings(stack: Stack) -> None:
    [first] = await write(stack, hazard("vol1", doc_id="h-1", point=near(0), photo=False, note="first note"))
    await write(stack, hazard("vol1b", doc_id="h-2", point=near(5), photo=False))
    await stack.run_worker()
    placed = await cases_by_finding(stack)
    assert placed["h-1"] == placed["h-2"]
    doc = hazard("vol1", doc_id="h-1", point=near(500), photo=False, note="revised note")
    await write(stack, {**doc, "_rev": first["rev"]})
    stats = await stack.run_worker()
    assert stats["updated"] == 1
    async with stack.runtime.sessions() as session:
        case = await session.get(Case, placed["h-1"])
        assert case is not None and case.summary == "revised note"
    assert (await cases_by_finding(stack))["h-1"] == placed["h-1"]  # a revision never re-joins

    current = await stack.runtime.couch.get_doc(stack.settings.couch.grid_db("ZR01"), "h-2")
    await write(stack, {"_id": "h-2", "_rev": current["_rev"], "_deleted": True})
    stats = await stack.run_worker()
    assert stats["deleted"] == 1
    async with stack.runtime.sessions() as session:
        withdrawn = await session.get(Finding, "h-2")
        assert withdrawn is not None and withdrawn.deleted and withdrawn.case_id == placed["h-1"]
    # A withdrawn finding is no longer a join target: a new finding beside it opens a new case
    # unless the case still has a live finding nearby (h-1 moved 500 m away).
    await write(stack, hazard("vol1", doc_id="h-3", point=near(6), photo=False))
    await stack.run_worker()
    assert (await cases_by_finding(stack))["h-3"] != placed["h-1"]


async def test_replay_changes_nothing(stack: Stack) -> None:
    await write(stack, *[hazard("vol1", doc_id=f"h-{i}", point=near(i * 7), photo=False) for i in range(6)])
    await stack.run_worker()
    before = await cases_by_finding(stack)
    assert len(set(before.values())) == 1  # a chain 7 m apart: one case
    async with stack.runtime.sessions() as session, session.begin():
        for checkpoint in (await session.exec(select(FeedCheckpoint))).all():
            await session.delete(checkpoint)
    stats = await stack.run_worker()
    assert stats["duplicate"] == 6
    assert await cases_by_finding(stack) == before


async def test_a_long_running_worker_sees_what_others_changed(stack: Stack) -> None:
    """The worker keeps join candidates between passes; changes made by others (a case closed
    without touching it, a case merged away by a leader) must still be honoured."""
    follower = ChangeFollower(stack.runtime)
    await write(stack, hazard("vol1", doc_id="w-1", point=near(0), photo=False))
    await write(stack, hazard("vol1", doc_id="w-2", point=near(200), photo=False))
    await follower.run_once()
    placed = await cases_by_finding(stack)
    async with stack.runtime.sessions() as session, session.begin():
        await session.exec(
            update(Case).where(col(Case.id) == placed["w-1"]).values(state=CaseState.CLOSED)  # type: ignore[call-overload]
        )
    async with stack.http("lead1") as client:  # w-2's case absorbed by a third one, by hand
        await write(stack, hazard("vol1", doc_id="w-3", point=near(400), photo=False))
        await follower.run_once()
        placed = await cases_by_finding(stack)
        merged = await client.post(f"/api/cases/{placed['w-3']}/merge", json={"other_case_id": placed["w-2"]})
        assert merged.status_code == 200
    await write(
        stack,
        hazard("vol1b", doc_id="w-1b", point=near(3), photo=False),
        hazard("vol1b", doc_id="w-2b", point=near(203), photo=False),
    )
    await follower.run_once()
    after = await cases_by_finding(stack)
    assert after["w-1b"] not in {placed["w-1"], placed["w-2"], placed["w-3"]}  # closed: a new case
    assert after["w-2b"] == placed["w-3"]  # joins where w-2 lives now


async def test_revised_and_withdrawn_findings_recompute_case_severity_and_location(stack: Stack) -> None:
    [first] = await write(stack, hazard("vol1", doc_id="v-a", point=near(0), photo=False, severity="low"))
    await stack.run_worker()
    await write(stack, hazard("vol1b", doc_id="v-b", point=near(10), photo=False, severity="medium"))
    assert (await stack.run_worker())["joined"] == 1
    case_id = (await cases_by_finding(stack))["v-a"]

    async def shown() -> tuple[str, float, float]:
        async with stack.runtime.sessions() as session:
            case = await session.get(Case, case_id)
        assert case is not None
        return case.severity, case.lat, case.lon

    severity, lat, lon = await shown()
    assert severity == "low" and lat == pytest.approx(near(0)[1], abs=1e-5)  # as created

    # The first finding is revised: urgent now, and 15 m further north.
    revised = hazard("vol1", doc_id="v-a", point=near(15), photo=False, severity="urgent")
    [second] = await write(stack, {**revised, "_rev": first["rev"]})
    assert (await stack.run_worker())["updated"] == 1
    severity, lat, lon = await shown()
    assert severity == "urgent"
    assert (lon, lat) == (pytest.approx(near(15)[0], abs=1e-5), pytest.approx(near(15)[1], abs=1e-5))

    # Withdrawn: the case shows the remaining finding.
    await write(stack, {"_id": "v-a", "_rev": second["rev"], "_deleted": True})
    assert (await stack.run_worker())["deleted"] == 1
    severity, lat, lon = await shown()
    assert severity == "medium"
    assert lat == pytest.approx(near(10)[1], abs=1e-5)


async def test_the_same_id_from_another_grids_database_never_changes_a_finding(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """A volunteer of ZR02 cannot see ZR01's finding, so the gateway takes their document with the
    same id as a new one of ZR02's; the worker must not let it rewrite or withdraw ZR01's finding."""
    owner = await tablet_factory("vol1")
    await owner.put(hazard("vol1", doc_id="contested", note="楼道飞线", photo=False))
    await owner.push()
    await stack.run_worker()
    other = await tablet_factory("vol2")
    await other.put(hazard("vol2", doc_id="contested", point=ZR02_POINT, note="篡改", photo=False))
    assert (await other.push())["docs_written"] == 1  # a ZR02 document, as far as the gateway knows
    stats = await stack.run_worker()
    assert stats["id_clash"] == 1
    async with stack.runtime.sessions() as session:
        finding = await session.get(Finding, "contested")
        assert finding is not None
        assert (finding.author, finding.note, finding.deleted) == ("vol1", "楼道飞线", False)
        events = (
            await session.exec(select(CaseEvent).where(col(CaseEvent.case_id) == finding.case_id))
        ).all()
    clash = [e for e in events if e.action == "id_clash"]
    assert len(clash) == 1 and clash[0].details["author"] == "vol2"
    assert "未采用" in clash[0].reason
    assert (await stack.run_worker()).get("id_clash", 0) == 0  # applied once: a replay changes nothing
