"""Two tablets of one volunteer that edit the same document offline, and what "converged" means."""

from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel import select

from server.db.models import Finding
from tests.support.docs import hazard
from tests.support.stack import Stack
from tests.support.tablet import Tablet

__all__ = [
    "case_of",
    "converged",
    "edit",
    "hard_conflict",
    "two_cases_one_conflicted",
    "two_tablets_with",
    "write_branches",
]


async def two_tablets_with(
    stack: Stack, tablet_factory: "Callable[..., Awaitable[Tablet]]", doc: dict[str, Any]
) -> tuple[Tablet, Tablet]:
    """vol1's phone and tablet both hold revision 1 of ``doc``."""
    first = await tablet_factory("vol1")
    second = await tablet_factory("vol1")
    await first.put(doc)
    assert (await first.push())["docs_written"] == 1
    await stack.run_worker()
    assert (await second.pull())["ok"] is True
    assert (await second.get(doc["_id"]))["note"] == doc["note"]
    return first, second


async def edit(tablet: Tablet, doc_id: str, **changes: Any) -> None:
    current = await tablet.get(doc_id)
    await tablet.put({**current, **changes})


async def hard_conflict(
    stack: Stack,
    tablet_factory: "Callable[..., Awaitable[Tablet]]",
    doc: dict[str, Any],
    notes: tuple[str, str] = ("甲", "乙"),
) -> tuple[Tablet, Tablet]:
    """Both of vol1's tablets change the note of ``doc`` offline, each its own way, and push: the
    worker finds one hard conflict."""
    first, second = await two_tablets_with(stack, tablet_factory, doc)
    await edit(first, doc["_id"], note=notes[0])
    await edit(second, doc["_id"], note=notes[1])
    await first.push()
    await second.push()
    assert (await stack.run_worker())["conflict_hard"] == 1
    return first, second


async def converged(stack: Stack, doc_id: str, *tablets: Tablet) -> list[dict[str, Any]]:
    seen = []
    for tablet in tablets:
        assert (await tablet.pull())["ok"] is True
        seen.append(await tablet.get(doc_id, conflicts=True))
    server = await stack.runtime.couch.get_doc(
        stack.settings.couch.grid_db("ZR01"), doc_id, params={"conflicts": "true"}
    )
    for doc in seen:
        assert "_conflicts" not in doc or doc["_conflicts"] == []
        assert doc["_rev"] == server["_rev"]
    assert "_conflicts" not in server
    return seen


async def write_branches(
    stack: Stack, doc: dict[str, Any], rev: str, notes: tuple[str, str] = ("甲", "乙")
) -> None:
    """Two branches of ``doc`` (now at ``rev`` in ZR01's database), each changing the note its own
    way, written straight to CouchDB as replication would: a hard conflict whose winner is the
    second note's."""
    root = rev.split("-", 1)[1]
    branches = [
        {**doc, "note": note, "_rev": f"2-{tag}", "_revisions": {"start": 2, "ids": [tag, root]}}
        for note, tag in zip(notes, ("a" * 32, "b" * 32), strict=True)
    ]
    await stack.runtime.couch.bulk_docs(stack.settings.couch.grid_db("ZR01"), branches, new_edits=False)


async def case_of(stack: Stack) -> dict[str, str | None]:
    """Each finding's case."""
    async with stack.runtime.sessions() as session:
        return {f.doc_id: f.case_id for f in (await session.exec(select(Finding))).all()}


async def two_cases_one_conflicted(stack: Stack, here_id: str, there_id: str) -> dict[str, str | None]:
    """Two findings of vol1 in two micro-grids of ZR01, each its own case; the one in the other
    micro-grid (``there_id``) then gets two conflicting branches the worker has not seen yet.
    Returns each finding's case."""
    _, _, elsewhere = stack.micro_grids_of_zr01()
    here = hazard("vol1", doc_id=here_id, accuracy_m=1.0, photo=False)
    there = hazard("vol1", doc_id=there_id, point=elsewhere, accuracy_m=1.0, note="原始", photo=False)
    answers = await stack.runtime.couch.bulk_docs(stack.settings.couch.grid_db("ZR01"), [here, there])
    await stack.run_worker()
    await write_branches(stack, there, answers[1]["rev"])
    cases = await case_of(stack)
    assert cases[here_id] != cases[there_id]
    return cases
