"""The vertical slice: a hazard written on a tablet reaches CouchDB, becomes a case, and its
status comes back to the tablet. Runs against SQLite and PostgreSQL."""

import base64

import pytest

from field_schema.demo_data import make_png
from tests.conftest import TabletFactory
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_hazard_travels_from_tablet_to_case_and_back(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    tablet = await tablet_factory("vol1")
    doc = hazard("vol1", doc_id="hazard-slice-1")
    await tablet.put(doc)

    pushed = await tablet.push()
    assert pushed["ok"] is True
    assert pushed["docs_written"] == 1
    assert pushed["doc_write_failures"] == 0

    # It landed in the ZR01 grid database, attachment included, under our service account.
    grid_db = stack.settings.couch.grid_db("ZR01")
    stored = await stack.runtime.couch.get_doc(grid_db, "hazard-slice-1", params={"attachments": True})
    assert stored["concern_code"] == "04-01"
    assert base64.b64decode(stored["_attachments"]["photo-1.png"]["data"]) == make_png(32, 32, 1)

    first = await stack.run_worker()
    assert first["created"] == 1
    assert first["published"] == 1

    async with stack.http("lead1") as client:
        response = await client.get("/api/cases")
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 1
        case = body["data"][0]
        assert case["grid_code"] == "ZR01"
        assert case["grid_name_zh"] == "真光网格"
        assert case["concern_code"] == "04-01"
        assert case["concern_name_zh"] == "飞线充电"
        assert case["state"] == "problem_found"
        assert case["state_label_zh"] == "发现问题"
        assert case["created_at"].endswith("+08:00")
        assert case["findings"][0]["doc_id"] == "hazard-slice-1"
        assert case["findings"][0]["reported_datum"] == "gcj02"
        assert case["photo_url"] is not None
        photo = await client.get(case["photo_url"])
        assert photo.status_code == 200
        assert photo.headers["content-type"] == "image/png"
        assert photo.content == make_png(32, 32, 1)

    # Re-running the worker creates nothing twice.
    second = await stack.run_worker()
    assert second.get("created", 0) == 0
    async with stack.http("lead1") as client:
        assert (await client.get("/api/cases")).json()["count"] == 1

    pulled = await tablet.pull()
    assert pulled["ok"] is True
    status = await tablet.get("status:hazard-slice-1")
    assert status["type"] == "case_status"
    assert status["case_id"] == case["id"]
    assert status["state"] == "problem_found"
    assert status["state_label_zh"] == "发现问题"


async def test_wrong_password_gets_json_401(stack: Stack) -> None:
    async with stack.http() as client:
        sync = await client.get("/sync/field", auth=("vol1", "wrong-password"))
        api = await client.get("/api/cases", auth=("lead1", "wrong-password"))
        anonymous = await client.get("/api/cases")
    for response in (sync, api, anonymous):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"] == "unauthorized"
    assert "用户名或密码错误" in sync.json()["reason"]


async def test_leader_of_another_grid_cannot_see_the_case(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    tablet = await tablet_factory("vol1")
    await tablet.put(hazard("vol1", doc_id="hazard-zr01"))
    await tablet.push()
    await stack.run_worker()
    async with stack.http("lead1") as own:
        case_id = (await own.get("/api/cases")).json()["data"][0]["id"]
    async with stack.http("lead2") as other:
        listing = await other.get("/api/cases")
        assert listing.status_code == 200
        assert listing.json()["count"] == 0
        detail = await other.get(f"/api/cases/{case_id}")
        assert detail.status_code == 404
        photo = await other.get(f"/api/cases/{case_id}/findings/hazard-zr01/photos/photo-1.png")
        assert photo.status_code == 404
        foreign_filter = await other.get("/api/cases", params={"grid": "ZR01"})
        assert foreign_filter.status_code == 403
    async with stack.http("vol1") as volunteer:
        assert (await volunteer.get("/api/cases")).status_code == 403


async def test_health_reports_both_stores(stack: Stack) -> None:
    async with stack.http() as client:
        response = await client.get("/health")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["sql"]["ok"] is True
    assert checks["couchdb"]["ok"] is True


async def test_openapi_is_served(stack: Stack) -> None:
    async with stack.http() as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/cases" in paths
    assert "/health" in paths
