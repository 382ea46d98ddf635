"""A grid leader merges a case while the worker records a conflict of one of its findings: the
conflict ends on the case the finding ends in, whichever transaction commits first."""

import asyncio
from typing import Any

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.db.models import CaseEvent, Conflict, User
from server.merging import CaseMerger
from sync.conflicts import examine, record
from tests.support.conflicts import case_of, two_cases_one_conflicted
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

_STILL_WAITING_S = 0.5
"""How long the second transaction is given to (wrongly) get ahead of the first one."""


async def _conflict_cases(stack: Stack) -> list[str | None]:
    async with stack.runtime.sessions() as session:
        return [c.case_id for c in (await session.exec(select(Conflict))).all()]


async def _cases_told(stack: Stack, action: str) -> list[str]:
    async with stack.runtime.sessions() as session:
        return list((await session.exec(select(CaseEvent.case_id).where(CaseEvent.action == action))).all())


async def _merger(stack: Stack, session: AsyncSession) -> CaseMerger:
    user = (await session.exec(select(User).where(User.username == "lead1"))).one()
    return CaseMerger(stack.runtime, session, Principal.of(user))


async def test_a_page_waits_for_the_leaders_merge_and_records_on_the_surviving_case(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = await two_cases_one_conflicted(stack, "h-stay", "h-move")
    kept, absorbed = str(cases["h-stay"]), str(cases["h-move"])
    about_to_commit, may_commit = asyncio.Event(), asyncio.Event()

    async with stack.runtime.sessions() as session:
        real_commit = session.commit

        async def commit_when_allowed() -> None:
            about_to_commit.set()
            await may_commit.wait()
            await real_commit()

        monkeypatch.setattr(session, "commit", commit_when_allowed)
        merger = await _merger(stack, session)
        merging = asyncio.create_task(merger.merge(kept, absorbed, "同一处 / the same spot"))
        await asyncio.wait_for(about_to_commit.wait(), 30)
        # The merge has moved h-move and holds its transaction open: the page must wait for it.
        paging = asyncio.create_task(stack.run_worker())
        await asyncio.sleep(_STILL_WAITING_S)
        assert not paging.done()
        may_commit.set()
        result = await merging
    stats = await paging

    assert result.moved_findings == ["h-move"]
    assert stats["conflict_hard"] == 1
    assert (await case_of(stack))["h-move"] == kept
    assert await _conflict_cases(stack) == [kept]
    # The page applied the new revision to the case the finding is in now, not the absorbed one.
    assert await _cases_told(stack, "finding_updated") == [kept]
    assert await _cases_told(stack, "conflict_found") == [kept]


async def test_a_merge_waits_for_the_page_recording_a_conflict_and_moves_it_too(stack: Stack) -> None:
    cases = await two_cases_one_conflicted(stack, "h-stay", "h-move")
    kept, absorbed = str(cases["h-stay"]), str(cases["h-move"])
    db = stack.settings.couch.grid_db("ZR01")
    doc: dict[str, Any] = await stack.runtime.couch.get_doc(db, "h-move", params={"conflicts": "true"})
    report = await examine(stack.runtime.couch, db, doc)
    assert report is not None and report.kind == "hard"

    async with stack.runtime.sessions() as page:
        # What a worker's page does, held open: the conflict is recorded, not yet committed.
        assert await record(page, source_db=db, report=report, grid="ZR01") is not None
        async with stack.runtime.sessions() as session:
            merger = await _merger(stack, session)
            merging = asyncio.create_task(merger.merge(kept, absorbed, "同一处 / the same spot"))
            await asyncio.sleep(_STILL_WAITING_S)
            assert not merging.done()
            await page.commit()
            result = await merging

    assert result.moved_findings == ["h-move"]
    assert (await case_of(stack))["h-move"] == kept
    assert await _conflict_cases(stack) == [kept]
