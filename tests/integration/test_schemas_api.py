"""``/api/schemas``: public JSON Schemas per type and version, also published to the reference database."""

import pytest

from field_schema import DOCUMENT_TYPES
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_schemas_are_public_and_cover_every_type_and_version(stack: Stack) -> None:
    async with stack.http() as anonymous:
        listing = await anonymous.get("/api/schemas")
        hazard = await anonymous.get("/api/schemas/hazard")
        hazard_v1 = await anonymous.get("/api/schemas/hazard/1")
        unknown = await anonymous.get("/api/schemas/spaceship")
        no_version = await anonymous.get("/api/schemas/hazard/9")
    assert listing.status_code == 200
    types = listing.json()["types"]
    assert set(types) == set(DOCUMENT_TYPES)
    for name, doc_type in DOCUMENT_TYPES.items():
        assert set(types[name]["versions"]) == {str(v) for v in doc_type.versions}
        assert types[name]["current_version"] == doc_type.current_version
    assert types["missing_person"]["emergency"] is True
    assert types["case_status"]["server_only"] is True
    assert types["follow_up"]["label_zh"] == "回访"

    assert hazard.status_code == 200
    assert hazard.json()["current_version"] == 2
    assert "concern_code" in hazard.json()["versions"]["2"]["properties"]
    assert hazard_v1.json()["title"] == "隐患发现 / Hazard finding"
    assert "concern" in hazard_v1.json()["properties"]

    assert unknown.status_code == 404
    assert unknown.json()["reason_zh"].startswith("没有文档类型 spaceship")
    assert no_version.status_code == 404
    assert "schema_version 9" in no_version.json()["reason_en"]


async def test_schemas_reach_tablets_through_the_reference_database(stack: Stack) -> None:
    doc = await stack.runtime.couch.get_doc(stack.settings.couch.reference_db, "schemas")
    assert set(doc["schemas"]) == set(DOCUMENT_TYPES)
    assert (
        doc["schemas"]["visit"]["1"]["properties"]["outcome"]["x-enum-labels"]["not_home"]["zh"] == "无人应答"
    )
