import pytest

from field_schema import (
    DocumentInvalid,
    json_schemas,
    load_taxonomy,
    sniff_image_type,
    upgrade,
    validate_document,
)
from field_schema.demo_data import make_png

pytestmark = pytest.mark.unit

TAXONOMY = load_taxonomy()


def _v2(**overrides: object) -> dict:
    doc = {
        "_id": "h1",
        "_rev": "1-abc",
        "type": "hazard",
        "schema_version": 2,
        "author": "vol1",
        "device_id": "tab-1",
        "observed_at": "2026-11-25T09:30:00+08:00",
        "location": {"lat": 31.25, "lon": 121.40, "datum": "gcj02", "accuracy_m": 8, "source": "gnss"},
        "concern_code": "04-01",
        "note": "飞线充电",
    }
    doc.update(overrides)
    return doc


def test_taxonomy_has_four_categories_and_twelve_concerns() -> None:
    assert sorted(TAXONOMY.categories) == ["01", "02", "03", "04"]
    assert len(TAXONOMY.concerns) == 12
    assert TAXONOMY.concerns["04-01"].name_zh == "飞线充电"
    assert TAXONOMY.concerns["04-07"].name_zh == "街面走失"


def test_valid_current_hazard_passes() -> None:
    model = validate_document(_v2(), TAXONOMY)
    assert model.model_dump()["concern_code"] == "04-01"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"location": {"lat": 95, "lon": 121.4, "datum": "gcj02", "accuracy_m": 5}}, "location.lat"),
        ({"location": {"lat": 31, "lon": 121.4, "datum": "osgb36", "accuracy_m": 5}}, "location.datum"),
        ({"location": {"lat": 31, "lon": 121.4, "datum": "wgs84", "accuracy_m": -1}}, "location.accuracy_m"),
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"concern_code": "99-99"}, "concern_code"),
        ({"author": ""}, "author"),
    ],
)
def test_invalid_fields_are_named_by_path(change: dict, path: str) -> None:
    with pytest.raises(DocumentInvalid) as info:
        validate_document(_v2(**change), TAXONOMY)
    assert info.value.errors[0].path == path
    assert info.value.errors[0].message_zh


def test_missing_field_and_unknown_type_and_version() -> None:
    doc = _v2()
    del doc["location"]
    with pytest.raises(DocumentInvalid) as missing:
        validate_document(doc, TAXONOMY)
    assert missing.value.errors[0].path == "location"
    assert missing.value.errors[0].message_zh == "缺少必填字段"
    with pytest.raises(DocumentInvalid, match="unknown document type"):
        validate_document(_v2(type="spaceship"), TAXONOMY)
    with pytest.raises(DocumentInvalid, match="unsupported schema_version"):
        validate_document(_v2(schema_version=9), TAXONOMY)


def test_v1_hazard_is_valid_and_upgrades_without_touching_the_original() -> None:
    v1 = {
        "_id": "old",
        "type": "hazard",
        "schema_version": 1,
        "author": "vol1",
        "device_id": "old-tab",
        "observed_at": "2026-03-01T10:00:00+08:00",
        "lat": 31.25,
        "lng": 121.40,
        "accuracy": 12.0,
        "concern": "04-02",
        "note": "楼道停车",
    }
    original = dict(v1)
    validate_document(v1, TAXONOMY)
    upgraded = upgrade(v1)
    assert v1 == original
    assert upgraded["schema_version"] == 2
    assert upgraded["location"] == {
        "lat": 31.25,
        "lon": 121.40,
        "datum": "gcj02",
        "accuracy_m": 12.0,
        "source": "unknown",
    }
    assert upgraded["concern_code"] == "04-02"
    validate_document(upgraded, TAXONOMY)


def test_json_schemas_are_published_per_version() -> None:
    schemas = json_schemas()
    assert set(schemas["hazard"]) == {1, 2}
    assert "concern_code" in schemas["hazard"][2]["properties"]


def test_photos_are_checked_by_content() -> None:
    assert sniff_image_type(make_png(4, 4, 1)) == "image/png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"%PDF-1.7") is None
