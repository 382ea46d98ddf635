"""The case list's indexed paths (search rows, overdue and bounding-box indexes, count shapes)
return exactly what a straightforward query returns, on SQLite and PostgreSQL.

The data is generated and goes through the real code: hazards written to CouchDB and merged by
the worker (joins across pages, revised notes, withdrawn findings), a leader's split and merge,
dispatches with open and passed deadlines. The reference is the filter as first written: a
substring match on the summary, the case number and every note of the case's findings
(case-insensitive when the text has cased letters), scope and department as plain EXISTS.
"""

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import ColumnElement, and_, exists, func, or_, true
from sqlmodel import col, select

from server.cases._lifecycle import refresh_open_deadline
from server.db.models import Case, CaseDispatch, DispatchState, Finding
from tests.support.docs import ZR01_POINT, ZR02_POINT, hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

WORDS = [
    "飞线",
    "充电",
    "楼道",
    "电瓶车",
    "消防通道",
    "堵塞",
    "噪声",
    "地下室",
    "EV Charger",
    "Shop 7",
    "100%",
    "a_b",
]
SCOPES: dict[str, list[str] | None] = {"root": None, "lead1": ["ZR01"], "lead2": ["ZR02"], "coord": None}


def _note(rng: random.Random, k: int) -> str:
    return "，".join(rng.sample(WORDS, rng.randint(1, 3))) + f"（第{k}号）"


def _point(rng: random.Random, grid: str) -> tuple[float, float]:
    lon, lat = ZR01_POINT if grid == "ZR01" else ZR02_POINT
    spot = rng.randrange(6)  # a few spots, so that findings join
    return lon + spot * 0.0009 + rng.uniform(0, 0.00005), lat + rng.uniform(0, 0.00005)


async def _write(stack: Stack, grid: str, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = await stack.runtime.couch.bulk_docs(stack.settings.couch.grid_db(grid), list(docs))
    assert all("rev" in a for a in answers), answers
    return answers


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    if text.lower() != text.upper():
        return column.icontains(text, autoescape=True)  # type: ignore[no-any-return]
    return column.contains(text, autoescape=True)  # type: ignore[no-any-return]


def _reference(
    grids: list[str] | None, *, text: str | None = None, **filters: Any
) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [
        true()
        if grids is None
        else or_(
            col(Case.grid_code).in_(grids),
            and_(col(Case.grid_code).is_(None), col(Case.intake_grid).in_(grids)),
        )
    ]
    if text is not None:
        clauses.append(
            or_(
                _contains(col(Case.summary), text),
                _contains(col(Case.case_no), text),
                exists().where(col(Finding.case_id) == col(Case.id), _contains(col(Finding.note), text)),
            )
        )
    if "department" in filters:
        clauses.append(
            exists().where(
                col(CaseDispatch.case_id) == col(Case.id),
                col(CaseDispatch.department_code) == filters["department"],
            )
        )
    if filters.get("overdue"):
        clauses.append(
            exists().where(
                col(CaseDispatch.case_id) == col(Case.id),
                col(CaseDispatch.reported_at).is_(None),
                col(CaseDispatch.deadline_at) < datetime.now(UTC),
            )
        )
    if "bbox" in filters:
        min_lon, min_lat, max_lon, max_lat = filters["bbox"]
        clauses += [col(Case.lon).between(min_lon, max_lon), col(Case.lat).between(min_lat, max_lat)]
    if "state" in filters:
        clauses.append(col(Case.state) == filters["state"])
    return clauses


async def _expected(stack: Stack, clauses: list[ColumnElement[bool]]) -> set[str]:
    async with stack.runtime.sessions() as session:
        return set((await session.exec(select(Case.id).where(*clauses))).all())


async def _listed(client: httpx.AsyncClient, params: dict[str, str]) -> tuple[int, set[str]]:
    """The count of the first page, and every id reached through the cursors (7 a page)."""
    response = await client.get("/api/cases", params={**params, "limit": "7"})
    assert response.status_code == 200, response.text
    body = response.json()
    count, seen = body["count"], [c["id"] for c in body["data"]]
    while body["next_cursor"]:
        body = (
            await client.get("/api/cases", params={**params, "limit": "7", "cursor": body["next_cursor"]})
        ).json()
        assert body["count"] == count
        seen += [c["id"] for c in body["data"]]
    assert len(seen) == len(set(seen)), "a page repeated a case"
    return count, set(seen)


async def _terms(stack: Stack, rng: random.Random) -> list[str]:
    async with stack.runtime.sessions() as session:
        numbers = list((await session.exec(select(Case.case_no).order_by(col(Case.case_no)))).all())
        notes = list((await session.exec(select(Finding.note).order_by(col(Finding.doc_id)))).all())
    slices = []
    for note in rng.sample(notes, 6):
        start = rng.randrange(max(1, len(note) - 3))
        slices.append(note[start : start + rng.randint(2, 4)])
    return [
        *WORDS,
        "飞",  # one character
        "ev charger",  # other case
        "SHOP",
        "%",
        "_",
        "\\",
        "（第1",
        "不存在的词",
        numbers[0].lower(),
        numbers[-1][-6:],
        "ZR02-",
        *[s for s in slices if s.strip()],
    ]


async def _check(stack: Stack, rng: random.Random) -> int:
    """Every term for every reader, and the other indexed filters: API == reference. Returns how
    many (term, reader) pairs had matches, so the caller can see the data was not empty."""
    nonempty = 0
    for username, grids in SCOPES.items():
        async with stack.http(username) as client:
            for term in await _terms(stack, rng):
                expected = await _expected(stack, _reference(grids, text=term.strip()))
                count, seen = await _listed(client, {"q": term})
                assert (count, seen) == (len(expected), expected), (username, term)
                nonempty += bool(expected)
            box = (
                ZR01_POINT[0] - 0.0001,
                ZR01_POINT[1] - 0.0001,
                ZR01_POINT[0] + 0.0019,
                ZR01_POINT[1] + 0.0002,
            )
            for params, filters in [
                ({"bbox": ",".join(map(str, box))}, {"bbox": box}),
                ({"department": "fire", "overdue": "true"}, {"department": "fire", "overdue": True}),
                ({"department": "police"}, {"department": "police"}),
                ({"overdue": "true", "q": "飞线"}, {"overdue": True, "text": "飞线"}),
                ({"state": "problem_found", "q": "楼道"}, {"state": "problem_found", "text": "楼道"}),
            ]:
                expected = await _expected(stack, _reference(grids, **filters))
                assert await _listed(client, params) == (len(expected), expected), (username, params)
    return nonempty


async def _dispatch(stack: Stack, rng: random.Random) -> None:
    """Dispatches straight into SQL (the dispatch API is tested elsewhere): open with a passed or a
    future deadline, or reported; the case's open deadline kept as the case service keeps it."""
    now = datetime.now(UTC)
    async with stack.runtime.sessions() as session:
        case_ids = list((await session.exec(select(Case.id).order_by(col(Case.id)))).all())
        for case_id in rng.sample(case_ids, len(case_ids) // 2):
            for department in rng.sample(["fire", "police", "housing"], rng.randint(1, 2)):
                deadline = now + timedelta(days=rng.choice([-3, -1, 2, 5]))
                reported = rng.random() < 0.3
                session.add(
                    CaseDispatch(
                        case_id=case_id,
                        department_code=department,
                        working_days=3,
                        dispatched_by="lead1",
                        deadline_at=deadline,
                        reported_at=now if reported else None,
                        state=DispatchState.REPORTED if reported else DispatchState.DISPATCHED,
                    )
                )
            await session.flush()
            await refresh_open_deadline(session, case_id)
        await session.commit()


async def test_indexed_case_list_paths_match_the_reference(stack: Stack) -> None:
    rng = random.Random(20261201)
    written: dict[str, dict[str, Any]] = {}
    for batch in range(3):  # three worker passes: later findings join cases of earlier pages
        for grid, count in (("ZR01", 24), ("ZR02", 12)):
            docs = [
                hazard(
                    "vol1" if grid == "ZR01" else "vol2",
                    doc_id=f"h-{grid}-{batch}-{k}",
                    point=_point(rng, grid),
                    concern=rng.choice(["04-01", "04-02", "02-01"]),
                    note=_note(rng, batch * 100 + k),
                    photo=False,
                )
                for k in range(count)
            ]
            for doc, answer in zip(docs, await _write(stack, grid, docs), strict=True):
                written[doc["_id"]] = {**doc, "_rev": answer["rev"]}
        await stack.run_worker()
    async with stack.runtime.sessions() as session:
        sizes = (
            await session.exec(select(Finding.case_id, func.count()).group_by(col(Finding.case_id)))
        ).all()
    assert max(n for _, n in sizes) >= 3, "the data should join findings into cases"
    assert await _check(stack, rng) > 20

    # Revised notes (an old word may vanish), withdrawn findings (their notes still count, as
    # before), then a split and a merge by the leader of ZR01.
    revised = [written[d] for d in rng.sample(sorted(written), 8)]
    await _write(
        stack, "ZR01", [{**d, "note": "改为：消防通道堵塞 Revised"} for d in revised if "ZR01" in d["_id"]]
    )
    await _write(stack, "ZR02", [{**d, "note": "改为：噪声 Revised"} for d in revised if "ZR02" in d["_id"]])
    gone = [written[d] for d in sorted(written) if d not in {r["_id"] for r in revised}][:3]
    await _write(stack, "ZR01", [{"_id": d["_id"], "_rev": d["_rev"], "_deleted": True} for d in gone])
    await stack.run_worker()
    async with stack.runtime.sessions() as session:
        rows = (
            await session.exec(
                select(Finding.case_id, Finding.doc_id)
                .where(col(Finding.doc_id).like("h-ZR01-%"), col(Finding.deleted).is_(False))
                .order_by(col(Finding.doc_id))
            )
        ).all()
    by_case: dict[str, list[str]] = {}
    for case_id, doc_id in rows:
        by_case.setdefault(str(case_id), []).append(doc_id)
    big = [c for c, docs in sorted(by_case.items()) if len(docs) >= 2]
    async with stack.http("lead1") as lead:
        split = await lead.post(
            f"/api/cases/{big[0]}/split", json={"findings": by_case[big[0]][-1:], "reason": "另一处"}
        )
        assert split.status_code == 201, split.text
        merged = await lead.post(
            f"/api/cases/{big[1]}/merge", json={"other_case_id": big[2], "reason": "同一处"}
        )
        assert merged.status_code == 200, merged.text
    await _dispatch(stack, rng)
    assert await _check(stack, rng) > 20


async def test_control_characters_in_the_search_text_are_refused(stack: Stack) -> None:
    async with stack.http("lead1") as lead:
        response = await lead.get("/api/cases", params={"q": "飞线\x1f充电"})
    assert response.status_code == 400
    assert response.json()["reason"] == "搜索词不能包含控制字符 / q must not contain control characters"
