"""Every document type travels through the gateway as written: demo documents of all types are
accepted, stored unmodified (v1 findings stay v1), and the worker upgrades findings on read."""

from typing import Any

import pytest

from field_schema import load_taxonomy
from field_schema.demo_data import demo_documents
from geo import load_areas
from tests.support.docs import ZR02_POINT, follow_up, missing_person
from tests.support.stack import GRID_FILE, Stack

pytestmark = pytest.mark.integration


async def _push(stack: Stack, username: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with stack.http(username) as client:
        response = await client.post("/sync/field/_bulk_docs", json={"docs": docs})
    assert response.status_code == 201, response.text
    answers: list[dict[str, Any]] = response.json()
    return answers


async def test_demo_documents_of_every_type_are_accepted_and_stored_as_written(stack: Stack) -> None:
    counts = {"hazard": 20, "visit": 6, "installation": 4, "patrol": 2, "follow_up": 3, "missing_person": 1}
    generated = demo_documents(
        load_areas(GRID_FILE), load_taxonomy(), {"ZR01": ["vol1"]}, counts=counts, seed=3, photo_side=16
    )
    docs = [item.doc for item in generated if item.grid == "ZR01"]
    assert {d["type"] for d in docs} >= {"hazard", "visit", "installation", "patrol"}
    legacy = [d for d in docs if d["type"] == "hazard" and d["schema_version"] == 1]
    assert legacy, "the demo mix should contain an old-tablet finding"

    answers = await _push(stack, "vol1", docs)
    assert [a for a in answers if "error" in a] == []

    grid_db = stack.settings.couch.grid_db("ZR01")
    stored = await stack.runtime.couch.get_doc(grid_db, legacy[0]["_id"])
    assert stored["schema_version"] == 1 and "location" not in stored  # never rewritten

    outcome = await stack.run_worker()
    hazards = sum(1 for d in docs if d["type"] == "hazard")
    assert outcome["created"] + outcome.get("joined", 0) == hazards
    async with stack.http("lead1") as client:
        cases = (await client.get("/api/cases", params={"limit": 200})).json()
    legacy_case = next(c for c in cases["data"] if c["findings"][0]["doc_id"] == legacy[0]["_id"])
    assert legacy_case["concern_code"] == legacy[0]["concern"]
    assert legacy_case["findings"][0]["reported_datum"] == "gcj02"


async def test_follow_up_by_grid_hint_and_alert_from_another_grid(stack: Stack) -> None:
    answers = await _push(
        stack,
        "vol1",
        [
            follow_up("vol1", grid_hint="ZR01", _id="fu-ok"),
            follow_up("vol1", grid_hint="ZR02", _id="fu-elsewhere"),
            missing_person("vol1", point=ZR02_POINT, _id="alert-zr02"),
        ],
    )
    by_id = {a["id"]: a for a in answers}
    assert "error" not in by_id["fu-ok"]
    assert by_id["fu-elsewhere"]["error"] == "forbidden"
    assert "grid_hint" in by_id["fu-elsewhere"]["reason"]
    assert "error" not in by_id["alert-zr02"]
    # an alert goes to the alerts of the grid where the person was last seen, not the author's grid
    alert = await stack.runtime.couch.get_doc(stack.settings.couch.alert_db("ZR02"), "alert-zr02")
    assert alert["type"] == "missing_person"
