"""A grid leader may edit and delete the findings of their grid through sync, like any document of
their scope: the case history then says who did it (the gateway's receipt of that revision)."""

import pytest
from sqlmodel import col, select

from server.db.models import CaseEvent
from tests.conftest import TabletFactory
from tests.support.conflicts import edit
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def _told(stack: Stack) -> list[tuple[str, str, str | None]]:
    async with stack.runtime.sessions() as session:
        events = (
            await session.exec(
                select(CaseEvent)
                .where(col(CaseEvent.action).in_(["finding_updated", "finding_withdrawn"]))
                .order_by(col(CaseEvent.id))
            )
        ).all()
    return [(e.action, e.reason, e.details.get("by")) for e in events]


async def test_the_case_history_names_who_changed_a_finding_through_sync(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    volunteer, leader = await tablet_factory("vol1"), await tablet_factory("lead1")
    await volunteer.put(hazard("vol1", doc_id="h-told", note="三楼飞线", photo=False))
    assert (await volunteer.push())["docs_written"] == 1
    await stack.run_worker()

    await edit(volunteer, "h-told", note="三楼飞线，已拍照")  # the author's own revision
    assert (await volunteer.push())["docs_written"] == 1
    await stack.run_worker()
    assert (await leader.pull())["ok"] is True
    await edit(leader, "h-told", note="三楼东侧飞线")  # the leader corrects it
    assert (await leader.push())["docs_written"] == 1
    await stack.run_worker()
    await edit(leader, "h-told", _deleted=True)  # and then deletes it
    assert (await leader.push())["docs_written"] == 1
    await stack.run_worker()

    revised = "记录已由lead1修改（非作者本人）/ finding revised by lead1, not its author"
    deleted = "记录已被lead1删除（非作者本人）/ finding deleted by lead1, not its author"
    assert await _told(stack) == [
        ("finding_updated", "记录已更新 / finding revised", "vol1"),
        ("finding_updated", revised, "lead1"),
        ("finding_withdrawn", deleted, "lead1"),
    ]


async def test_a_revision_written_straight_to_couchdb_names_nobody(stack: Stack) -> None:
    couch, db = stack.runtime.couch, stack.settings.couch.grid_db("ZR01")
    doc = hazard("vol1", doc_id="h-direct", photo=False)
    [first] = await couch.bulk_docs(db, [doc])
    await stack.run_worker()
    await couch.bulk_docs(db, [{**doc, "_rev": first["rev"], "note": "运维直接改"}])
    await stack.run_worker()
    assert await _told(stack) == [("finding_updated", "记录已更新 / finding revised", None)]
