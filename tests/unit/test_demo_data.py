"""The demo generator: every type, any size, deterministic by seed, inside the right micro-grid."""

import base64
from collections import Counter

import pytest

from field_schema import load_taxonomy, sniff_image_type, upgrade, validate_document
from field_schema.demo_data import DEMO_TYPES, demo_documents, demo_hazards, mix_counts
from geo import GridIndex, load_areas, to_wgs84
from geo.demo_district import DEMO_GRID_FILE

pytestmark = pytest.mark.unit

AREAS = load_areas(DEMO_GRID_FILE)
INDEX = GridIndex(AREAS)
TAXONOMY = load_taxonomy()
AUTHORS = {"ZR01": ["volunteer1", "volunteer2"]}


def _docs(total: int, seed: int = 5) -> list:
    return list(demo_documents(AREAS, TAXONOMY, AUTHORS, counts=mix_counts(total), seed=seed))


def test_mix_counts_add_up_and_cover_every_type() -> None:
    for total in (0, 1, 7, 100, 12_345):
        counts = mix_counts(total)
        assert sum(counts.values()) == total
    assert set(mix_counts(100)) == set(DEMO_TYPES)
    assert all(n > 0 for n in mix_counts(100).values())


def test_same_seed_same_documents_other_seed_other_documents() -> None:
    assert _docs(120) == _docs(120)
    assert _docs(120) != _docs(120, seed=6)


def test_every_document_is_valid_and_of_the_requested_count() -> None:
    docs = _docs(300)
    kinds = Counter(d.doc["type"] for d in docs)
    assert kinds == Counter(mix_counts(300))
    assert {d.doc["schema_version"] for d in docs if d.doc["type"] == "hazard"} == {1, 2}
    assert len({d.doc["_id"] for d in docs}) == 300
    for item in docs:
        validate_document(item.doc, TAXONOMY)
        validate_document(upgrade(item.doc), TAXONOMY)


def test_documents_lie_in_the_grid_they_are_filed_under() -> None:
    for item in _docs(200):
        doc = upgrade(item.doc)
        if doc["type"] == "hazard" and item.doc["schema_version"] == 1:
            assert "grid_hint" not in item.doc  # old tablets never sent hints
        else:
            assert doc["grid_hint"] == item.grid
        location = doc.get("location")
        if location is None:
            continue
        lon, lat = to_wgs84(location["lon"], location["lat"], location["datum"])
        assert INDEX.assign(lon, lat).grid == item.grid
        if "micro_grid_hint" in doc:
            assert INDEX.assign(lon, lat).micro_grid == doc["micro_grid_hint"]


def test_photos_are_real_pngs_and_alerts_always_have_one() -> None:
    docs = _docs(200)
    with_photos = [d.doc for d in docs if "_attachments" in d.doc]
    assert with_photos
    for doc in with_photos:
        for attachment in doc["_attachments"].values():
            assert sniff_image_type(base64.b64decode(attachment["data"])) == "image/png"
    assert all("_attachments" in d.doc for d in docs if d.doc["type"] == "missing_person")


def test_authors_come_from_the_grid_and_hazard_shortcut_still_works() -> None:
    hazards = list(demo_hazards(AREAS, TAXONOMY, AUTHORS, count=40, seed=2))
    assert len(hazards) == 40 and {h["type"] for h in hazards} == {"hazard"}
    zr01 = {h["author"] for h in hazards if h.get("grid_hint") == "ZR01"}
    assert zr01 == {"volunteer1", "volunteer2"}
    assert {h["author"] for h in hazards if h.get("grid_hint") == "ZR02"} == {"demo-zr02"}
