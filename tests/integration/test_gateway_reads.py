"""Reads that looked right until a probe with the real client: conflicted documents for a
micro-grid user, ``_all_docs`` paging past hidden rows, ``keys`` with ``descending``, longpoll
from ``now``."""

import asyncio

import httpx
import pytest

from server.db.models import Role
from tests.conftest import TabletFactory
from tests.support.docs import ZR01_POINT, hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DB = "/sync/field"


async def _micro_user(stack: Stack) -> tuple[float, float]:
    """``micro1``: a volunteer of the micro-grid around ZR01_POINT; returns a point of another."""
    home, _, elsewhere = stack.micro_grids_of_zr01()
    await stack.add_user("micro1", Role.VOLUNTEER, [home])
    return elsewhere


async def test_a_micro_grid_user_pulls_a_conflicted_document_whose_loser_they_cannot_see(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    elsewhere = await _micro_user(stack)
    base = hazard("vol1", doc_id="edited-twice", accuracy_m=1.0, photo=False)
    async with stack.http("vol1") as vol1:
        first = (await vol1.put(f"{DB}/edited-twice", json=base)).json()["rev"]
        first_hash = first.split("-", 1)[1]
        # two tablets' edits: the winner (higher hash) stays here, the loser moved elsewhere
        stays = dict(base, note="留在本微网格", _rev="2-" + "b" * 32)
        stays["_revisions"] = {"start": 2, "ids": ["b" * 32, first_hash]}
        moved = hazard("vol1", doc_id="edited-twice", point=elsewhere, accuracy_m=1.0, photo=False)
        moved.update(_rev="2-" + "a" * 32, _revisions={"start": 2, "ids": ["a" * 32, first_hash]})
        written = await vol1.post(f"{DB}/_bulk_docs", json={"docs": [stays, moved], "new_edits": False})
        assert written.json() == [], written.text
    tablet = await tablet_factory("micro1")
    pulled = await tablet.pull()
    assert pulled["ok"] is True and pulled["docs_written"] >= 1, pulled
    doc = await tablet.get("edited-twice")
    assert doc["_rev"] == "2-" + "b" * 32 and doc["note"] == "留在本微网格"
    async with stack.http("micro1") as micro:
        listed = (await micro.get(f"{DB}/_changes", params={"style": "all_docs"})).json()["results"]
    rows = [r for r in listed if r["id"] == "edited-twice"]
    assert [c["rev"] for c in rows[0]["changes"]] == ["2-" + "b" * 32]


async def test_all_docs_limit_counts_only_what_the_user_sees(stack: Stack) -> None:
    elsewhere = await _micro_user(stack)
    async with stack.http("vol1") as vol1:
        for n in range(6):
            point = ZR01_POINT if n % 2 else elsewhere  # 0, 2, 4 hidden from micro1
            doc = hazard("vol1", doc_id=f"page-{n}", point=point, accuracy_m=1.0, photo=False)
            assert (await vol1.put(f"{DB}/page-{n}", json=doc)).status_code == 201
    window = {"startkey": '"page-"', "endkey": '"page-~"'}
    async with stack.http("micro1") as micro:
        every = (await micro.get(f"{DB}/_all_docs", params=window)).json()["rows"]
        assert [r["id"] for r in every] == ["page-1", "page-3", "page-5"]
        first_two = (await micro.get(f"{DB}/_all_docs", params={**window, "limit": "2"})).json()["rows"]
        assert [r["id"] for r in first_two] == ["page-1", "page-3"]
        second = (await micro.get(f"{DB}/_all_docs", params={**window, "skip": "1", "limit": "1"})).json()
        assert [r["id"] for r in second["rows"]] == ["page-3"]
        newest = await micro.get(f"{DB}/_all_docs", params={**window, "descending": "true", "limit": "2"})
        assert [r["id"] for r in newest.json()["rows"]] == []  # descending from "page-" is empty
        backwards = {"startkey": '"page-~"', "endkey": '"page-"', "descending": "true", "limit": "2"}
        assert [r["id"] for r in (await micro.get(f"{DB}/_all_docs", params=backwards)).json()["rows"]] == [
            "page-5",
            "page-3",
        ]


async def test_all_docs_keys_with_descending_limit_and_skip(stack: Stack) -> None:
    keys = ["k-1", "k-2", "k-3"]
    async with stack.http("vol1") as vol1:
        for key in keys:
            assert (
                await vol1.put(f"{DB}/{key}", json=hazard("vol1", doc_id=key, photo=False))
            ).status_code == 201
        reversed_rows = await vol1.post(f"{DB}/_all_docs", params={"descending": "true"}, json={"keys": keys})
        assert [r.get("id") for r in reversed_rows.json()["rows"]] == ["k-3", "k-2", "k-1"]
        assert all("error" not in r for r in reversed_rows.json()["rows"])
        limited = await vol1.post(f"{DB}/_all_docs", params={"limit": "1", "skip": "1"}, json={"keys": keys})
        assert [r["id"] for r in limited.json()["rows"]] == ["k-2"]


async def test_longpoll_from_now_hears_the_next_change(stack: Stack) -> None:
    async with stack.http("vol1") as vol1, stack.http("vol1") as writer:

        async def write_soon() -> None:
            await asyncio.sleep(1.0)
            doc = hazard("vol1", doc_id="after-now", photo=False)
            assert (await writer.put(f"{DB}/after-now", json=doc)).status_code == 201

        writing = asyncio.create_task(write_soon())
        answer = await vol1.get(
            f"{DB}/_changes",
            params={"feed": "longpoll", "since": "now", "timeout": "20000"},
            timeout=httpx.Timeout(30.0),
        )
        await writing
        assert answer.status_code == 200
        assert [r["id"] for r in answer.json()["results"]] == ["after-now"]
        waited = await vol1.get(
            f"{DB}/_changes", params={"feed": "longpoll", "since": "now", "timeout": "300"}
        )
        assert waited.status_code == 200 and waited.json()["results"] == []
        descending = await vol1.get(f"{DB}/_changes", params={"descending": "true"})
        assert descending.status_code == 400 and descending.json()["error"] == "bad_request"
