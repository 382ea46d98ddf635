"""Endpoint semantics of the gateway that replication alone does not exercise: CouchDB status codes,
JSON errors, single-document and attachment writes, _all_docs, _local, longpoll, ranges, limits."""

import asyncio
import time

import httpx
import pytest

from field_schema.demo_data import make_png
from tests.support.docs import hazard
from tests.support.stack import AppServer, Stack, app_without_couchdb

pytestmark = pytest.mark.integration

DB = "/sync/field"


async def test_server_root_and_database_info(stack: Stack) -> None:
    async with stack.http() as anonymous:
        root = await anonymous.get("/sync/")
        assert root.status_code == 200
        assert root.json()["couchdb"] == "Welcome"
        assert root.json()["uuid"] == stack.settings.gateway.server_uuid
        assert (await anonymous.get(DB)).status_code == 401
    async with stack.http("vol1") as client:
        info = (await client.get(DB)).json()
        assert info["db_name"] == "field"
        assert info["update_seq"].startswith("gp1-")
        real_db = await client.get("/sync/gp_grid_zr01")
        assert real_db.status_code == 403  # only admins open the store's databases directly
        assert real_db.json()["error"] == "forbidden"
        assert (await client.put(DB)).status_code == 412
        assert (await client.delete(DB)).status_code == 403


async def test_single_document_put_get_delete(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        doc = hazard("vol1", doc_id="single", photo=False)
        created = await client.put(f"{DB}/single", json=doc)
        assert created.status_code == 201
        rev1 = created.json()["rev"]
        assert rev1.startswith("1-")

        fetched = await client.get(f"{DB}/single", params={"revs": "true"})
        assert fetched.json()["_revisions"]["start"] == 1
        stale = await client.put(f"{DB}/single", json={**doc, "note": "x"})
        assert stale.status_code == 409
        assert stale.json()["error"] == "conflict"

        updated = await client.put(f"{DB}/single", json={**doc, "_rev": rev1, "note": "复查"})
        assert updated.status_code == 201
        rev2 = updated.json()["rev"]
        open_revs = await client.get(f"{DB}/single", params={"open_revs": "all"})
        assert [r["ok"]["_rev"] for r in open_revs.json()] == [rev2]

        posted = await client.post(DB, json=hazard("vol1", photo=False))
        assert posted.status_code == 201
        assert posted.json()["ok"] is True

        deleted = await client.delete(f"{DB}/single", params={"rev": rev2})
        assert deleted.status_code == 200
        assert (await client.get(f"{DB}/single")).status_code == 404
    async with stack.http("vol1b") as colleague:
        posted_id, posted_rev = posted.json()["id"], posted.json()["rev"]
        foreign = await colleague.put(
            f"{DB}/{posted_id}", json={**hazard("vol1", doc_id=posted_id), "_rev": posted_rev}
        )
        assert foreign.status_code == 403
        assert foreign.json()["error"] == "forbidden"
        assert "只能修改自己记录的文档" in foreign.json()["reason"]


async def test_attachment_put_get_range_and_content_check(stack: Stack) -> None:
    photo = make_png(64, 64, 5)
    async with stack.http("vol1") as client:
        rev = (
            await client.put(f"{DB}/with-photo", json=hazard("vol1", doc_id="with-photo", photo=False))
        ).json()["rev"]
        put = await client.put(
            f"{DB}/with-photo/evidence%201.png",
            params={"rev": rev},
            content=photo,
            headers={"Content-Type": "image/png"},
        )
        assert put.status_code == 201
        new_rev = put.json()["rev"]

        whole = await client.get(f"{DB}/with-photo/evidence%201.png")
        assert whole.status_code == 200
        assert whole.content == photo
        assert whole.headers["content-type"] == "image/png"
        assert int(whole.headers["content-length"]) == len(photo)
        assert whole.headers["accept-ranges"] == "bytes"
        etag = whole.headers["etag"]

        part = await client.get(f"{DB}/with-photo/evidence%201.png", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == photo[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(photo)}"
        tail = await client.get(
            f"{DB}/with-photo/evidence%201.png", headers={"Range": "bytes=-10", "If-Range": etag}
        )
        assert tail.content == photo[-10:]
        stale_etag = await client.get(
            f"{DB}/with-photo/evidence%201.png", headers={"Range": "bytes=0-9", "If-Range": '"x"'}
        )
        assert stale_etag.status_code == 200
        beyond = await client.get(
            f"{DB}/with-photo/evidence%201.png", headers={"Range": f"bytes={len(photo) + 5}-"}
        )
        assert beyond.status_code == 416

        pdf = await client.put(
            f"{DB}/with-photo/report.pdf",
            params={"rev": new_rev},
            content=b"%PDF-1.7 not a photo",
            headers={"Content-Type": "application/pdf"},
        )
        assert pdf.status_code == 403
        assert "JPEG" in pdf.json()["reason"]


async def test_all_docs_local_docs_and_doc_ids_filter(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        for name in ("b-doc", "a-doc", "c-doc"):
            assert (
                await client.put(f"{DB}/{name}", json=hazard("vol1", doc_id=name, photo=False))
            ).status_code == 201
        keyed = (await client.post(f"{DB}/_all_docs", json={"keys": ["c-doc", "nope", "a-doc"]})).json()
        assert [row.get("id", row.get("error")) for row in keyed["rows"]] == ["c-doc", "not_found", "a-doc"]
        listing = (
            await client.get(
                f"{DB}/_all_docs", params={"startkey": '"a-"', "endkey": '"c-\uffff"', "include_docs": "true"}
            )
        ).json()
        assert [row["id"] for row in listing["rows"]] == ["a-doc", "b-doc", "c-doc"]
        assert listing["rows"][0]["doc"]["author"] == "vol1"
        limited = (await client.get(f"{DB}/_all_docs", params={"limit": "2", "skip": "1"})).json()
        assert len(limited["rows"]) == 2

        filtered = await client.post(
            f"{DB}/_changes", params={"filter": "_doc_ids"}, json={"doc_ids": ["b-doc", "c-doc"]}
        )
        assert sorted(r["id"] for r in filtered.json()["results"]) == ["b-doc", "c-doc"]

        assert (await client.get(f"{DB}/_local/checkpoint-1")).status_code == 404
        saved = await client.put(f"{DB}/_local/checkpoint-1", json={"last_seq": "x"})
        assert saved.json() == {"ok": True, "id": "_local/checkpoint-1", "rev": "0-1"}
        conflict = await client.put(f"{DB}/_local/checkpoint-1", json={"_rev": "0-7", "last_seq": "y"})
        assert conflict.status_code == 409
        again = await client.put(f"{DB}/_local/checkpoint-1", json={"_rev": "0-1", "last_seq": "y"})
        assert again.json()["rev"] == "0-2"
        assert (await client.get(f"{DB}/_local/checkpoint-1")).json()["last_seq"] == "y"
        garbled = await client.put(f"{DB}/_local/checkpoint-1", json={"_rev": "2-abc", "last_seq": "z"})
        assert garbled.status_code == 409
        blind = await client.put(f"{DB}/_local/checkpoint-1", json={"last_seq": "z"})  # CouchDB accepts it
        assert blind.json()["rev"] == "0-3"
        stale_delete = await client.delete(f"{DB}/_local/checkpoint-1", params={"rev": "0-2"})
        assert stale_delete.status_code == 409
        assert (await client.delete(f"{DB}/_local/checkpoint-1", params={"rev": "0-3"})).status_code == 200
        assert (await client.get(f"{DB}/_local/checkpoint-1")).status_code == 404
        assert (await client.delete(f"{DB}/_local/checkpoint-1", params={"rev": "0-3"})).status_code == 404
    async with stack.http("vol1b") as other_user:
        # checkpoints belong to one user
        await other_user.put(f"{DB}/_local/shared-name", json={"who": "vol1b"})
    async with stack.http("vol1") as client:
        assert (await client.get(f"{DB}/_local/shared-name")).status_code == 404


async def test_checkpoints_through_two_gateway_processes_never_conflict(stack: Stack) -> None:
    """Behind a round-robin proxy PouchDB may read a checkpoint from one gateway process and write
    it through another; it retries a conflicting write without end, so a process answering from
    a stale copy of its own would stall the replication (a per-process cache was tried for that)."""
    second = AppServer(stack.settings)
    await asyncio.to_thread(second.start)
    path = f"{DB}/_local/replication-1"
    try:
        async with (
            httpx.AsyncClient(base_url=stack.app.url, auth=stack.auth("vol1"), timeout=30) as first_app,
            httpx.AsyncClient(base_url=second.url, auth=stack.auth("vol1"), timeout=30) as second_app,
        ):
            assert (await first_app.put(path, json={"last_seq": "seq-0"})).status_code == 201
            for batch in range(1, 7):
                # reads and writes land on either process, as a proxy spreads them
                reader, writer = (first_app, second_app) if batch % 3 else (second_app, first_app)
                current = (await reader.get(path)).json()
                written = await writer.put(path, json={"_rev": current["_rev"], "last_seq": f"seq-{batch}"})
                assert written.status_code == 201, written.text
                assert written.json()["rev"] == f"0-{batch + 1}"
            assert (await first_app.get(path)).json()["last_seq"] == "seq-6"
            assert (await second_app.get(path)).json()["_rev"] == "0-7"
    finally:
        await asyncio.to_thread(second.stop)


async def test_longpoll_heartbeats_then_wakes_on_a_change(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        since = (await client.get(DB)).json()["update_seq"]
        started = time.monotonic()
        idle = await client.get(
            f"{DB}/_changes",
            params={"feed": "longpoll", "since": since, "timeout": "1200", "heartbeat": "300"},
        )
        assert time.monotonic() - started >= 1.1
        assert idle.text.startswith("\n")
        assert idle.json()["results"] == []

        waiting = asyncio.create_task(
            client.get(
                f"{DB}/_changes",
                params={"feed": "longpoll", "since": since, "heartbeat": "10000", "timeout": "20000"},
            )
        )
        await asyncio.sleep(0.5)
        assert not waiting.done()
        async with stack.http("vol1") as writer:
            await writer.put(f"{DB}/wakes-up", json=hazard("vol1", doc_id="wakes-up", photo=False))
        woke = await asyncio.wait_for(waiting, timeout=10)
        assert [r["id"] for r in woke.json()["results"]] == ["wakes-up"]


async def test_malformed_requests_get_couchdb_errors(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        bad_since = await client.get(f"{DB}/_changes", params={"since": "42-not-ours"})
        assert bad_since.status_code == 400
        assert "同步序号无效" in bad_since.json()["reason"]
        not_json = await client.post(
            f"{DB}/_bulk_docs", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        assert not_json.json()["error"] == "bad_request"
        no_docs = await client.post(f"{DB}/_bulk_docs", json={"documents": []})
        assert no_docs.status_code == 400
        continuous = await client.get(f"{DB}/_changes", params={"feed": "continuous"})
        assert continuous.status_code == 400
        bulk = await client.post(
            f"{DB}/_bulk_docs", json={"docs": [hazard("vol1", photo=False), {"_id": "typeless", "x": 1}]}
        )
        answers = bulk.json()
        assert answers[0]["ok"] is True
        assert answers[1]["error"] == "forbidden"
        assert "type" in answers[1]["reason"]


async def test_bulk_get_never_fails_the_whole_request(stack: Stack) -> None:
    async with stack.http("vol2") as writer:
        from tests.support.docs import ZR02_POINT

        zr02 = hazard("vol2", doc_id="zr02-doc", point=ZR02_POINT, photo=False)
        rev = (await writer.put(f"{DB}/zr02-doc", json=zr02)).json()["rev"]
    async with stack.http("vol1") as client:
        answer = await client.post(
            f"{DB}/_bulk_get",
            params={"revs": "true"},
            json={"docs": [{"id": "zr02-doc", "rev": rev}, {"id": "grid:ZR01"}]},
        )
        assert answer.status_code == 200
        results = answer.json()["results"]
        assert results[0]["docs"][0]["error"]["error"] == "not_found"
        assert results[1]["docs"][0]["ok"]["code"] == "ZR01"


async def test_session_cookie_login(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.app.url) as client:
        bad = await client.post("/sync/_session", data={"name": "vol1", "password": "nope"})
        assert bad.status_code == 401
        login = await client.post("/sync/_session", data={"name": "vol1", "password": "vol1-password"})
        assert login.status_code == 200
        assert login.json()["name"] == "vol1"
        assert "AuthSession" in login.cookies
        session = (await client.get("/sync/_session")).json()
        assert session["userCtx"]["name"] == "vol1"
        assert session["info"]["authenticated"] == "cookie"
        assert (await client.get(DB)).status_code == 200
        await client.delete("/sync/_session")
        client.cookies.clear()
        assert (await client.get(DB)).status_code == 401


async def test_bearer_token_login(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.app.url) as client:
        issued = await client.post(
            "/api/auth/token", json={"username": "lead1", "password": "lead1-password"}
        )
        assert issued.status_code == 201
        token = issued.json()["access_token"]
        assert issued.json()["expires_at"].endswith("+08:00")
        assert (await client.get(DB, headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (
            await client.get("/api/cases", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        rejected = await client.get(DB, headers={"Authorization": f"Bearer {forged}"})
        assert rejected.status_code == 401
        # changing the password ends the token
    async with stack.http("root") as admin:
        await admin.patch("/api/users/lead1", json={"password": "a-new-password"})
    async with httpx.AsyncClient(base_url=stack.app.url) as client:
        assert (await client.get(DB, headers={"Authorization": f"Bearer {token}"})).status_code == 401


async def test_user_admin_api_is_admin_only(stack: Stack) -> None:
    async with stack.http("lead1") as leader:
        assert (await leader.get("/api/users")).status_code == 403
        assert (await leader.get("/api/me")).json()["username"] == "lead1"
    async with stack.http("root") as admin:
        created = await admin.post(
            "/api/users",
            json={"username": "vol9", "password": "vol9-password", "role": "volunteer", "grids": ["ZR03"]},
        )
        assert created.status_code == 201
        assert "password" not in created.json() and "password_hash" not in created.json()
        assert (
            await admin.post(
                "/api/users", json={"username": "vol9", "password": "x" * 9, "role": "volunteer"}
            )
        ).status_code == 409
        unknown_grid = await admin.patch("/api/users/vol9", json={"grids": ["ZR99"]})
        assert unknown_grid.status_code == 400
        deactivated = await admin.patch("/api/users/vol9", json={"is_active": False})
        assert deactivated.json()["is_active"] is False
    async with httpx.AsyncClient(base_url=stack.app.url, auth=("vol9", "vol9-password")) as former:
        assert (await former.get(DB)).status_code == 401


async def test_sync_while_couchdb_is_away_is_a_503_as_the_case_api_says_it(stack: Stack) -> None:
    async with (
        app_without_couchdb(stack.settings) as app,
        httpx.AsyncClient(base_url=app.url, auth=stack.auth("vol1"), timeout=30) as client,
    ):
        answers = [await client.get(DB), await client.get(f"{DB}/_changes")]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "error": "service_unavailable",
            "reason": "文档库暂时不可用，请稍后重试 / the document store is unavailable, retry later",
        }
        assert answer.headers["retry-after"] == "5"
