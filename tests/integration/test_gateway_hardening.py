"""Pushes that tried to reach past the rules: each is refused for that document alone, recorded,
and the rest of the batch is stored."""

import pytest

from tests.support.docs import ZR01_POINT, ZR02_POINT, hazard, missing_person
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DB = "/sync/field"


async def test_a_design_document_is_refused_wherever_it_would_go(stack: Stack) -> None:
    # validate_doc_update in a grid database would run on every later write, and pouchdb-server evals it
    evil = hazard("vol1", doc_id="_design/evil", photo=False)
    evil["validate_doc_update"] = "function(n) { throw({forbidden: 'blocked'}); }"
    alert_there = missing_person("vol1", point=ZR02_POINT, doc_id="_design/block")
    async with stack.http("vol1") as vol1:
        put = await vol1.put(f"{DB}/_design/evil", json=evil)
        assert put.status_code == 403 and put.json()["error"] == "forbidden"
        assert "_design/" in put.json()["reason"]
        good = hazard("vol1", photo=False)
        bulk = await vol1.post(f"{DB}/_bulk_docs", json={"docs": [alert_there, good], "new_edits": True})
        answers = {a["id"]: a for a in bulk.json()}
        assert answers["_design/block"]["error"] == "forbidden" and answers[good["_id"]]["ok"] is True
    couch = stack.runtime.couch
    for db in (stack.settings.couch.grid_db("ZR01"), stack.settings.couch.alert_db("ZR02")):
        rows = (await couch.all_docs(db, keys=["_design/evil", "_design/block"]))["rows"]
        assert all("error" in row for row in rows), rows
    async with stack.http("lead1") as leader:
        refused = {r["doc_id"]: r["rule"] for r in (await leader.get("/api/refusals")).json()["data"]}
    assert refused == {"_design/evil": "reserved_id", "_design/block": "reserved_id"}


async def test_dot_document_ids_stay_documents(stack: Stack) -> None:
    """``.`` and ``..`` are valid CouchDB ids; sent unencoded, a URL library resolves them and the
    gateway's request (with the CouchDB admin's credentials) would leave the grid database."""
    async with stack.http("vol1") as vol1:
        for doc_id, path in (("..", "%2E%2E"), (".", "%2E")):
            created = await vol1.put(f"{DB}/{path}", json=hazard("vol1", doc_id=doc_id, photo=False))
            assert created.status_code == 201, created.text
            fetched = await vol1.get(f"{DB}/{path}")
            assert fetched.status_code == 200 and fetched.json()["_id"] == doc_id
        for escape in ("%2E%2E/_all_dbs", "%2E%2E/_config", "%2E/_all_docs", "%2E/_security"):
            answer = await vol1.get(f"{DB}/{escape}")
            assert answer.status_code == 404, (escape, answer.text)
            assert answer.json()["error"] == "not_found"


async def test_an_alert_in_another_grid_is_changed_by_its_author_only(stack: Stack) -> None:
    alert = missing_person("vol2", point=ZR02_POINT, doc_id="alert-zr02")
    async with stack.http("vol2") as vol2:
        assert (await vol2.put(f"{DB}/alert-zr02", json=alert)).status_code == 201
    async with stack.http("vol1") as vol1:
        # a branch with no shared history and a higher generation would win in CouchDB
        forged = dict(missing_person("vol1", point=ZR02_POINT, doc_id="alert-zr02"), status="cancelled")
        forged["_rev"] = "30-" + "d" * 32
        forged["_revisions"] = {"start": 30, "ids": ["d" * 32]}
        good = hazard("vol1", photo=False, _rev="1-" + "e" * 32)
        answer = await vol1.post(f"{DB}/_bulk_docs", json={"docs": [forged, good], "new_edits": False})
        assert [a["id"] for a in answer.json()] == ["alert-zr02"], answer.text
        assert answer.json()[0]["error"] == "forbidden"
        assert "只有其作者" in answer.json()[0]["reason"]
        fresh = {k: v for k, v in forged.items() if k not in {"_rev", "_revisions"}}
        again = await vol1.post(f"{DB}/_bulk_docs", json={"docs": [fresh]})
        assert again.json()[0]["error"] == "forbidden"
        assert (await vol1.get(f"{DB}/{good['_id']}")).status_code == 200
        # vol1's own alert in ZR02 stays vol1's to change and to withdraw, where it was filed
        own = missing_person("vol1", point=ZR02_POINT, doc_id="alert-of-vol1")
        first = (await vol1.put(f"{DB}/alert-of-vol1", json=own)).json()
        found = dict(own, _rev=first["rev"], status="found", found_at="2026-12-03T10:00:00+08:00")
        second = await vol1.put(f"{DB}/alert-of-vol1", json=found)
        assert second.status_code == 201, second.text
        moved = missing_person("vol1", point=ZR01_POINT, doc_id="alert-of-vol1", _rev=second.json()["rev"])
        third = await vol1.put(f"{DB}/alert-of-vol1", json=moved)
        assert third.status_code == 201, third.text
        withdrawn = await vol1.delete(f"{DB}/alert-of-vol1", params={"rev": third.json()["rev"]})
        assert withdrawn.status_code == 200, withdrawn.text
    couch = stack.runtime.couch
    alerts = stack.settings.couch.alert_db("ZR02")
    kept = await couch.get_doc(alerts, "alert-zr02", params={"conflicts": "true"})
    assert kept["author"] == "vol2" and "_conflicts" not in kept
    withdrawn_row = (await couch.all_docs(alerts, keys=["alert-of-vol1"]))["rows"][0]
    assert withdrawn_row["value"]["deleted"] is True
    # the move and the withdrawal went where the alert is, not into vol1's own grid: one copy only
    for db in (stack.settings.couch.grid_db("ZR01"), stack.settings.couch.alert_db("ZR01")):
        assert "error" in (await couch.all_docs(db, keys=["alert-of-vol1"]))["rows"][0]
    async with stack.http("vol2") as vol2:
        update = dict(alert, _rev=kept["_rev"], status="found", found_at="2026-12-03T11:00:00+08:00")
        assert (await vol2.put(f"{DB}/alert-zr02", json=update)).status_code == 201


async def test_case_status_ids_and_tombstone_bodies(stack: Stack) -> None:
    finding = hazard("vol1b", photo=False)
    async with stack.http("vol1b") as colleague:
        assert (await colleague.put(f"{DB}/{finding['_id']}", json=finding)).status_code == 201
    async with stack.http("vol1") as vol1:
        planted = {
            "_id": f"status:{finding['_id']}",
            "_rev": "1-" + "b" * 32,
            "_deleted": True,
            "type": "case_status",
            "state": "closed",
        }
        answer = await vol1.post(f"{DB}/_bulk_docs", json={"docs": [planted], "new_edits": False})
        assert answer.json()[0]["error"] == "forbidden"
        # a deletion of one's own document is stored without whatever body it carried
        own = hazard("vol1", photo=False)
        rev = (await vol1.put(f"{DB}/{own['_id']}", json=own)).json()["rev"]
        tombstone = {
            "_id": own["_id"],
            "_rev": rev,
            "_deleted": True,
            "anything": {"author": "vol2"},
            "_attachments": {"x.jpg": {"content_type": "image/jpeg", "data": "bm90IGFuIGltYWdl"}},
        }
        deleted = await vol1.put(f"{DB}/{own['_id']}", json=tombstone)
        assert deleted.status_code == 201, deleted.text
    couch = stack.runtime.couch
    grid_db = stack.settings.couch.grid_db("ZR01")
    rows = (await couch.all_docs(grid_db, keys=[f"status:{finding['_id']}"]))["rows"]
    assert "error" in rows[0]
    stored = await couch.get_doc(grid_db, own["_id"], params={"rev": deleted.json()["rev"]})
    assert set(stored) == {"_id", "_rev", "_deleted"}


async def test_a_document_the_rules_cannot_read_does_not_fail_its_batch(stack: Stack) -> None:
    odd = hazard("vol1", photo=False)
    odd["type"] = {"not": "a string"}
    odd["_rev"] = "1-" + "f" * 32
    good = hazard("vol1", photo=False, _rev="1-" + "e" * 32)
    async with stack.http("vol1") as vol1:
        answer = await vol1.post(f"{DB}/_bulk_docs", json={"docs": [odd, good], "new_edits": False})
        assert answer.status_code == 201
        assert [(a["id"], a["error"]) for a in answer.json()] == [(odd["_id"], "forbidden")]
        assert "type" in answer.json()[0]["reason"]
        assert (await vol1.get(f"{DB}/{good['_id']}")).status_code == 200
