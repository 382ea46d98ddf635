"""Refusals as the gateway records them and leaders list them: any value a tablet sends is recorded
(never a 500 that loses the refusal and has PouchDB resend the batch forever), and each refusal
reaches the leaders of its author's grids and micro-grids and of the place where the document lies.
Runs on SQLite and PostgreSQL."""

import base64
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlmodel import Session, col, select

from server.db.migrate import alembic_config
from server.db.models import Refusal, RefusalArea, Role
from server.refusals import fingerprint, fit_refusal
from tests.support.docs import ZR02_POINT, hazard
from tests.support.migrations import schema_at
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DB = "/sync/field"
LENGTH = {c.name: getattr(c.type, "length", None) for c in Refusal.__table__.c}  # type: ignore[attr-defined]


async def _listed(stack: Stack, leader: str, **params: str) -> set[str]:
    async with stack.http(leader) as client:
        answer = await client.get("/api/refusals", params=params)
    assert answer.status_code == 200, answer.text
    return {r["doc_id"] for r in answer.json()["data"]}


async def _push(stack: Stack, username: str, docs: list[dict[str, Any]], **headers: str) -> list[Any]:
    async with stack.http(username) as client:
        answer = await client.post(f"{DB}/_bulk_docs", json={"docs": docs}, headers=headers)
    assert answer.status_code == 201, answer.text
    result: list[Any] = answer.json()
    return result


async def test_refusals_with_long_or_unstorable_values_are_recorded(stack: Stack) -> None:
    good = hazard("vol1", photo=False, doc_id="good")
    long_device = hazard("vol1", photo=False, doc_id="long-device", concern="99-99", device_id="d" * 300)
    long_name = hazard("vol1", photo=False, doc_id="long-name")
    name = "n" * 250 + ".jpg"
    not_a_photo = base64.b64encode(b"not an image").decode()
    long_name["_attachments"] = {name: {"content_type": "image/jpeg", "data": not_a_photo}}
    nul = hazard("vol1", photo=False, doc_id="nul\x00id", concern="99-99", device_id="tab\x00let")
    for refused in [long_device, long_name, nul]:
        refused["_rev"] = "1-0123456789abcdef"  # as PouchDB sends them: a retry is the same refusal
    answered = await _push(stack, "vol1", [good, long_device, long_name, nul])
    assert [a.get("error") for a in answered] == [None, "forbidden", "forbidden", "forbidden"]
    no_device = {"_id": "no-device", "_rev": "1-" + "r" * 300, "type": "hazard"}
    answered = await _push(stack, "vol1", [no_device], **{"X-Device-Id": "h" * 300})
    assert answered[0]["error"] == "forbidden"
    async with stack.http("vol1") as vol1:
        assert (await vol1.get(f"{DB}/good")).status_code == 200

    async with stack.runtime.sessions() as session:
        rows = {r.doc_id: r for r in (await session.exec(select(Refusal))).all()}
    assert set(rows) == {"long-device", "long-name", "nulid", "no-device"}
    assert rows["long-device"].device_id == "d" * LENGTH["device_id"]
    assert rows["long-name"].field == f"_attachments.{name}"[: LENGTH["field"]]
    assert rows["long-name"].rule == "attachment_type"
    assert rows["nulid"].device_id == "tablet"
    assert rows["no-device"].device_id == "h" * LENGTH["device_id"]
    assert rows["no-device"].rev == no_device["_rev"][: LENGTH["rev"]]
    assert await _listed(stack, "lead1") == set(rows)

    # the same push sent again records nothing twice
    await _push(stack, "vol1", [long_device, long_name, nul])
    async with stack.runtime.sessions() as session:
        assert len((await session.exec(select(Refusal.id))).all()) == 4


async def test_a_document_pushed_without_a_revision_is_recorded_once_however_often_it_is_sent(
    stack: Stack,
) -> None:
    """Without ``_rev`` (a client posting with ``new_edits`` true) nothing names the content but the
    refusal itself: the same refusal sent again, twice in one batch, by ``_bulk_docs`` or by PUT,
    is one row; the same document refused for another value after an edit is a second one."""
    unknown_concern = hazard("vol1", photo=False, doc_id="no-rev", concern="99-99")
    unknown_concern.pop("_rev", None)
    twice_in_one_batch = await _push(stack, "vol1", [unknown_concern, unknown_concern])
    assert [a["error"] for a in twice_in_one_batch] == ["forbidden", "forbidden"]
    assert len(await _refusals_of(stack, "no-rev")) == 1
    for _ in range(3):
        answered = await _push(stack, "vol1", [unknown_concern])
        assert answered[0]["error"] == "forbidden"
    async with stack.http("vol1") as vol1:
        put = await vol1.put(f"{DB}/no-rev", json=unknown_concern)
        assert put.status_code == 403, put.text
        assert put.json()["error"] == "forbidden"
    edited = {**unknown_concern, "concern_code": "98-98"}
    await _push(stack, "vol1", [edited])
    await _push(stack, "vol1", [edited])

    rows = await _refusals_of(stack, "no-rev")
    assert len(rows) == 2, [(r.rule, r.field) for r in rows]
    assert all(r.rev is None for r in rows)
    assert {r.field for r in rows} == {"concern_code"}
    assert ["98-98" in r.reason_en for r in rows] == [False, True]
    async with stack.http("lead1") as lead1:
        listed = (await lead1.get("/api/refusals")).json()["data"]
    assert [r["doc_id"] for r in listed].count("no-rev") == 2


async def test_a_document_without_a_revision_moved_elsewhere_is_refused_anew_for_that_place(
    stack: Stack,
) -> None:
    """The same refusal of a document that now lies in another grid concerns that grid's leaders:
    it is a new row filed there, not the first row seen by the first grid's leaders only."""
    here = hazard("coord", photo=False, doc_id="moved", concern="99-99")
    here.pop("_rev", None)
    moved = {**hazard("coord", photo=False, doc_id="moved", concern="99-99", point=ZR02_POINT)}
    moved.pop("_rev", None)
    for doc in [here, here, moved, moved]:
        assert (await _push(stack, "coord", [doc]))[0]["error"] == "forbidden"
    assert [r.grid_code for r in await _refusals_of(stack, "moved")] == ["ZR01", "ZR02"]


async def _refusals_of(stack: Stack, doc_id: str) -> list[Refusal]:
    async with stack.runtime.sessions() as session:
        query = select(Refusal).where(Refusal.doc_id == doc_id).order_by(col(Refusal.id))
        return list((await session.exec(query)).all())


async def test_refusals_reach_the_leaders_of_the_author_and_of_where_the_document_lies(
    stack: Stack,
) -> None:
    await stack.add_user("vol12", Role.VOLUNTEER, ["ZR01", "ZR02"])
    in_zr02 = {"point": ZR02_POINT, "concern": "99-99", "photo": False}
    await _push(stack, "vol12", [hazard("vol12", doc_id="by-vol12-in-zr02", **in_zr02)])
    await _push(stack, "coord", [hazard("coord", doc_id="by-coord-in-zr02", **in_zr02)])
    await _push(stack, "vol1", [hazard("vol1", doc_id="by-vol1-in-zr02", point=ZR02_POINT)])
    await _push(stack, "vol1", [{"_id": "by-vol1-nowhere", "type": "hazard"}])
    await _push(stack, "vol2", [{"_id": "by-vol2-nowhere", "type": "hazard"}])

    # ZR02's leader: everything that lies in ZR02, and their volunteer's refusal
    in_zr02_ids = {"by-vol12-in-zr02", "by-coord-in-zr02", "by-vol1-in-zr02"}
    assert await _listed(stack, "lead2") == in_zr02_ids | {"by-vol2-nowhere"}
    assert await _listed(stack, "lead2", grid="ZR02") == in_zr02_ids | {"by-vol2-nowhere"}
    # ZR01's leader: the refusals of the people who work in ZR01, wherever the document lies
    assert await _listed(stack, "lead1") == in_zr02_ids | {"by-vol1-nowhere"}
    async with stack.http("lead1") as lead1:
        assert (await lead1.get("/api/refusals", params={"grid": "ZR02"})).status_code == 403
        listed = (await lead1.get("/api/refusals")).json()["data"]
    where = {r["doc_id"]: (r["grid_code"], r["micro_grid_code"]) for r in listed}
    zr02_micro = stack.runtime.grids.index.assign(*ZR02_POINT).micro_grid  # type: ignore[union-attr]
    assert where["by-vol12-in-zr02"] == ("ZR02", zr02_micro)
    assert where["by-vol1-nowhere"] == (None, None)


async def test_micro_grid_leaders_see_their_micro_grids_refusals_only(stack: Stack) -> None:
    home, other_code, other_point = stack.micro_grids_of_zr01()
    await stack.add_user("micro-vol", Role.VOLUNTEER, [home])
    await stack.add_user("home-lead", Role.GRID_LEADER, [home])
    await stack.add_user("other-lead", Role.GRID_LEADER, [other_code])

    await _push(
        stack, "micro-vol", [hazard("micro-vol", doc_id="mv-elsewhere", point=other_point, accuracy_m=1.0)]
    )
    await _push(stack, "micro-vol", [{"_id": "mv-nowhere", "type": "hazard"}])
    await _push(stack, "vol1", [hazard("vol1", doc_id="v1-at-home", concern="99-99", accuracy_m=1.0)])
    await _push(stack, "vol1", [{"_id": "v1-nowhere", "type": "hazard"}])

    everything = {"mv-elsewhere", "mv-nowhere", "v1-at-home", "v1-nowhere"}
    assert await _listed(stack, "lead1") == everything
    # a grid's leader narrows the list to one of its micro-grids
    assert await _listed(stack, "lead1", grid=home) == {"mv-elsewhere", "mv-nowhere", "v1-at-home"}
    assert await _listed(stack, "lead1", grid=other_code) == {"mv-elsewhere"}
    # a micro-grid's leader: their micro-grid's people and documents, not the whole grid's
    assert await _listed(stack, "home-lead") == {"mv-elsewhere", "mv-nowhere", "v1-at-home"}
    assert await _listed(stack, "other-lead") == {"mv-elsewhere"}
    async with stack.http("home-lead") as lead:
        for outside in ["ZR01", other_code]:
            assert (await lead.get("/api/refusals", params={"grid": outside})).status_code == 403


def test_migration_keeps_recorded_refusals_with_their_grid(database_url: str, tmp_path: Path) -> None:
    """Refusals recorded before migration 0014 stay listed for the leaders of the grid they were
    filed under."""
    settings = schema_at(database_url, tmp_path, "0013")
    engine = create_engine(settings.database.sync_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO refusals (username, doc_id, grid_code, rule, reason_zh, reason_en, created_at) "
                "VALUES ('vol1', 'old', 'ZR01', 'invalid_document', '旧', 'old', CURRENT_TIMESTAMP), "
                "('root', 'older', NULL, 'reserved_id', '旧', 'old', CURRENT_TIMESTAMP)"
            )
        command.upgrade(alembic_config(settings), "head")
        with Session(engine) as session:
            query = select(Refusal.doc_id, RefusalArea.code).join(
                RefusalArea, col(RefusalArea.refusal_id) == col(Refusal.id)
            )
            filed = session.exec(query).all()
        assert [tuple(row) for row in filed] == [("old", "ZR01")]
    finally:
        engine.dispose()


def test_migration_keeps_one_row_of_refusals_recorded_on_every_retry(
    database_url: str, tmp_path: Path
) -> None:
    """Before migration 0015 a refusal without a revision was recorded again on each retry: the
    first copy stays, filed under every area any copy was, with the fingerprint the gateway gives a
    retry of it."""
    settings = schema_at(database_url, tmp_path, "0014")
    engine = create_engine(settings.database.sync_url)
    insert = text(
        "INSERT INTO refusals (username, doc_id, grid_code, rule, field, reason_zh, reason_en, created_at) "
        "VALUES (:user, 'retried', 'ZR01', 'unknown_concern', :field, '旧', :reason, CURRENT_TIMESTAMP)"
    )
    file_under = text("INSERT INTO refusal_areas (refusal_id, code) VALUES (:id, :code)")
    recorded = [
        ("vol1", "concern", "unknown concern", "ZR01"),
        ("vol1", "concern", "unknown concern", "ZR01-01"),
        ("vol1", "concern", "unknown concern", "ZR01"),
        ("vol1", "concern", "another reason", "ZR01"),
        ("vol2", "concern", "unknown concern", "ZR02"),
        ("vol2", None, "未知的关注代码 / unknown concern code", "ZR02"),
        ("vol2", None, "未知的关注代码 / unknown concern code", "ZR02"),
    ]
    if settings.database.is_sqlite:
        # SQLite kept values longer than their columns before refusals were fitted (2026-12-02)
        recorded += [("vol2", "f" * 250, "long field", "ZR02"), ("vol2", "f" * 260, "long field", "ZR02")]
    try:
        with engine.begin() as connection:
            ids = []
            for user, field, reason, code in recorded:
                connection.execute(insert, {"user": user, "field": field, "reason": reason})
                ids.append(connection.execute(text("SELECT max(id) FROM refusals")).scalar_one())
                connection.execute(file_under, {"id": ids[-1], "code": code})
        command.upgrade(alembic_config(settings), "head")
        with Session(engine) as session:
            kept = session.exec(select(Refusal).order_by(col(Refusal.id))).all()
            expected = [ids[0], ids[3], ids[4], ids[5]] + ([ids[7]] if settings.database.is_sqlite else [])
            assert [r.id for r in kept] == expected
            areas = session.exec(select(RefusalArea.code).where(RefusalArea.refusal_id == ids[0])).all()
            assert sorted(areas) == ["ZR01", "ZR01-01"]
            for row in kept:
                # what the gateway computes for a retry of it (its values fitted, as it stores them)
                assert row.fingerprint == fingerprint(
                    fit_refusal(row.model_dump(exclude={"id", "created_at"}))
                ), row.id
    finally:
        engine.dispose()
