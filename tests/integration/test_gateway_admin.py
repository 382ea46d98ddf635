"""Operator access: admins reach every database of the backend through the gateway, with CouchDB's
semantics, driven by the real PouchDB client; non-admins get 403; every admin request is audited."""

import base64
from urllib.parse import quote

import httpx
import pytest

from field_schema.demo_data import make_png
from tests.support.stack import Stack
from tests.support.tablet import Tablet, TabletError

pytestmark = pytest.mark.integration

ODD_NAMES = ["ops+tmp(1)$", "ops/nested-db", "ops_x-y"]


def _db(stack: Stack, name: str) -> str:
    """Databases made here live beside other tests' on one pouchdb-server: keep them apart."""
    return stack.settings.couch.db_prefix + name


VALIDATE = """function (newDoc, oldDoc, userCtx) {
  if (!newDoc._deleted && !newDoc.owner) { throw({forbidden: 'owner is required'}); }
}"""


@pytest.fixture
async def admin(stack: Stack):  # type: ignore[no-untyped-def]
    client = await Tablet.open_remote(stack.app.url + "/sync", "root", "root-password")
    yield client
    await client.close()


async def test_admin_creates_and_destroys_databases_with_unusual_names(stack: Stack, admin: Tablet) -> None:
    names = [_db(stack, name) for name in ODD_NAMES]
    for name in names:
        info = await admin.call("info", db=name)  # PouchDB creates it: PUT /{db}
        # Apache CouchDB keeps "/" in names; pouchdb-server (our test backend) drops it.
        assert info["db_name"] in {name, name.replace("/", "")}
        await admin.call("put", db=name, doc={"_id": "a/b+c%d", "owner": "root"})
        assert (await admin.call("get", db=name, doc_id="a/b+c%d"))["owner"] == "root"
    plus = _db(stack, "ops+new")
    async with stack.http("root") as client:
        assert (await client.put(f"/sync/{quote(plus, safe='')}")).status_code == 201
        assert (await client.put(f"/sync/{quote(plus, safe='')}")).status_code == 412
        listed = set((await client.get("/sync/_all_dbs")).json())
        assert {names[0], names[2], plus, "field"} <= listed
        assert {names[1], names[1].replace("/", "")} & listed
        assert (await client.delete(f"/sync/{quote(plus, safe='')}")).status_code == 200
        assert (await client.get(f"/sync/{quote(plus, safe='')}")).status_code == 404
    for name in names:
        await admin.call("destroy", db=name)
    async with stack.http("root") as client:
        listed = set((await client.get("/sync/_all_dbs")).json())
    assert not {*names, names[1].replace("/", "")} & listed


async def test_replication_between_two_databases_through_the_gateway(stack: Stack, admin: Tablet) -> None:
    for i in range(25):
        await admin.call(
            "put", db=_db(stack, "ops-source"), doc={"_id": f"doc-{i:02d}", "owner": "root", "n": i}
        )
    result = await admin.call(
        "replicate",
        source=_db(stack, "ops-source"),
        target=_db(stack, "ops-copy"),
        options={"batch_size": 10},
    )
    assert result["ok"] is True
    assert result["docs_written"] == 25
    copied = await admin.call("all_docs", db=_db(stack, "ops-copy"), options={"include_docs": True})
    assert [row["doc"]["n"] for row in copied["rows"]] == list(range(25))


async def test_design_doc_view_filtered_replication_and_validation(stack: Stack, admin: Tablet) -> None:
    design = {
        "_id": "_design/ops",
        "views": {"by_kind": {"map": "function (doc) { if (doc.kind) { emit(doc.kind, 1); } }"}},
        "filters": {"only_fire": "function (doc) { return doc.kind === 'fire'; }"},
        "validate_doc_update": VALIDATE,
    }
    await admin.call("put", db=_db(stack, "ops-design"), doc=design)
    for i, kind in enumerate(["fire", "gas", "fire", "noise"]):
        await admin.call(
            "put", db=_db(stack, "ops-design"), doc={"_id": f"k{i}", "kind": kind, "owner": "root"}
        )

    view = await admin.call("query", db=_db(stack, "ops-design"), view="ops/by_kind", options={"key": "fire"})
    assert [row["id"] for row in view["rows"]] == ["k0", "k2"]

    filtered = await admin.call(
        "replicate",
        source=_db(stack, "ops-design"),
        target=_db(stack, "ops-fire"),
        options={"filter": "ops/only_fire"},
    )
    assert filtered["ok"] is True
    copied = await admin.call("all_docs", db=_db(stack, "ops-fire"))
    assert [row["id"] for row in copied["rows"]] == ["k0", "k2"]

    with pytest.raises(TabletError) as refused:
        await admin.call("put", db=_db(stack, "ops-design"), doc={"_id": "no-owner", "kind": "fire"})
    assert refused.value.status == 403
    assert "owner is required" in (refused.value.error.get("message") or "")

    async with stack.http("root") as client:
        missing_view = await client.get(f"/sync/{_db(stack, 'ops-design')}/_design/ops/_view/nope")
        assert missing_view.status_code == 404
        missing_filter = await client.get(
            f"/sync/{_db(stack, 'ops-design')}/_changes", params={"filter": "ops/nope"}
        )
        assert missing_filter.status_code == 404
        by_view = await client.get(
            f"/sync/{_db(stack, 'ops-design')}/_changes", params={"filter": "_view", "view": "ops/by_kind"}
        )
        assert sorted(r["id"] for r in by_view.json()["results"]) == ["k0", "k1", "k2", "k3"]
        doc_ids = await client.post(
            f"/sync/{_db(stack, 'ops-design')}/_changes",
            params={"filter": "_doc_ids"},
            json={"doc_ids": ["k1"]},
        )
        assert [r["id"] for r in doc_ids.json()["results"]] == ["k1"]
        bulk = await client.post(
            f"/sync/{_db(stack, 'ops-design')}/_bulk_docs",
            json={"docs": [{"_id": "x1", "owner": "root"}, {"_id": "x2"}]},
        )
        assert bulk.json()[0]["ok"] is True
        assert bulk.json()[1]["error"] == "forbidden"
        compact = await client.post(
            f"/sync/{_db(stack, 'ops-design')}/_compact", headers={"Content-Type": "application/json"}
        )
        assert compact.status_code in {200, 202}
        assert compact.json()["ok"] is True
        still_there = await client.get(f"/sync/{_db(stack, 'ops-design')}")
        assert still_there.json()["db_name"] == _db(stack, "ops-design")


async def test_encoded_ids_and_attachment_names(stack: Stack, admin: Tablet) -> None:
    photo = make_png(16, 16, 4)
    created = await admin.call("put", db=_db(stack, "ops-att"), doc={"_id": "dir/doc +1%", "owner": "root"})
    stored = await admin.call(
        "put_attachment",
        db=_db(stack, "ops-att"),
        doc_id="dir/doc +1%",
        name="sub dir/照片 1.png",
        rev=created["rev"],
        base64=base64.b64encode(photo).decode(),
        content_type="image/png",
    )
    assert stored["ok"] is True
    fetched = await admin.call(
        "get_attachment", db=_db(stack, "ops-att"), doc_id="dir/doc +1%", name="sub dir/照片 1.png"
    )
    assert base64.b64decode(fetched["base64"]) == photo
    doc = await admin.call(
        "get", db=_db(stack, "ops-att"), doc_id="dir/doc +1%", options={"revs_info": True, "conflicts": True}
    )
    assert "sub dir/照片 1.png" in doc["_attachments"]
    assert doc["_revs_info"][0]["status"] == "available"


async def test_non_admins_get_403_everywhere(stack: Stack, admin: Tablet) -> None:
    await admin.call("put", db=_db(stack, "ops-private"), doc={"_id": "secret", "owner": "root"})
    async with stack.http("lead1") as leader:
        for method, path in [
            ("GET", f"/sync/{_db(stack, 'ops-private')}"),
            ("PUT", f"/sync/{_db(stack, 'ops-new')}"),
            ("DELETE", f"/sync/{_db(stack, 'ops-private')}"),
            ("GET", f"/sync/{_db(stack, 'ops-private')}/secret"),
            ("GET", f"/sync/{_db(stack, 'ops-private')}/_all_docs"),
            ("GET", f"/sync/{_db(stack, 'ops-private')}/_changes"),
            ("POST", f"/sync/{_db(stack, 'ops-private')}/_compact"),
            ("GET", f"/sync/{_db(stack, 'ops-private')}/_design/ops/_view/by_kind"),
            ("GET", "/sync/_active_tasks"),
        ]:
            response = await leader.request(method, path)
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.json()["error"] == "forbidden"
        assert (await leader.get("/sync/_all_dbs")).json() == ["field"]
    async with httpx.AsyncClient(base_url=stack.app.url) as anonymous:
        assert (await anonymous.put(f"/sync/{_db(stack, 'ops-anon')}")).status_code == 401


async def test_admin_requests_are_audited(stack: Stack, admin: Tablet) -> None:
    await admin.call("put", db=_db(stack, "ops-audit"), doc={"_id": "one", "owner": "root"})
    async with stack.http("root") as client:
        await client.get(f"/sync/{_db(stack, 'ops-audit')}/one")
        await client.get(f"/sync/{_db(stack, 'ops-audit')}/missing")
        audit = (await client.get("/api/audit/admin", params={"limit": 50})).json()["data"]
    entries = [(e["method"], e["path"], e["status"]) for e in audit]
    assert ("GET", f"/sync/{_db(stack, 'ops-audit')}/one", 200) in entries
    assert ("GET", f"/sync/{_db(stack, 'ops-audit')}/missing", 404) in entries
    assert any(
        e[0] == "PUT" and e[1].rstrip("/") == f"/sync/{_db(stack, 'ops-audit')}" and e[2] == 201
        for e in entries
    )
    assert all(e["username"] == "root" for e in audit)
    assert audit[0]["at"].endswith("+08:00")
    async with stack.http("lead1") as leader:
        assert (await leader.get("/api/audit/admin")).status_code == 403
