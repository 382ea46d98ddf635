"""Every document type and version against its fixtures in tests/fixtures/documents/<type>.v<N>.json."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from field_schema import (
    DOCUMENT_TYPES,
    DocumentInvalid,
    json_schemas,
    load_taxonomy,
    upgrade,
    validate_document,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
TAXONOMY = load_taxonomy()
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


REGISTERED = sorted(f"{name}.v{v}" for name, t in DOCUMENT_TYPES.items() for v in t.versions)
VALID = [(name, i) for name in REGISTERED for i in range(len(_load(name)["valid"]))]
INVALID = [(name, i) for name in REGISTERED for i in range(len(_load(name)["invalid"]))]


def test_every_type_and_version_has_fixtures() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == REGISTERED
    for name in REGISTERED:
        data = _load(name)
        assert data["valid"], name
        assert data["invalid"], name


@pytest.mark.parametrize(("name", "index"), VALID)
def test_valid_fixture_passes_and_upgrades_without_touching_the_original(name: str, index: int) -> None:
    doc = _load(name)["valid"][index]
    original = copy.deepcopy(doc)
    validate_document(doc, TAXONOMY)
    current = upgrade(doc)
    assert doc == original
    assert current["schema_version"] == DOCUMENT_TYPES[doc["type"]].current_version
    validate_document(current, TAXONOMY)


@pytest.mark.parametrize(("name", "index"), INVALID)
def test_invalid_fixture_names_the_field_in_both_languages(name: str, index: int) -> None:
    case = _load(name)["invalid"][index]
    with pytest.raises(DocumentInvalid) as info:
        validate_document(case["document"], TAXONOMY)
    first = info.value.errors[0]
    assert first.path == case["path"], case["why"]
    assert CHINESE.search(first.message_zh), first
    assert first.message_en and not CHINESE.search(first.message_en), first


def test_v1_hazard_upgrades_to_the_expected_v2() -> None:
    data = _load("hazard.v1")
    assert upgrade(data["valid"][0]) == data["upgraded"]


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = list(schema.get("properties", {}).items())
    for definition in schema.get("$defs", {}).values():
        found.extend(definition.get("properties", {}).items())
    return found


def _choices(schema: dict[str, Any], prop: dict[str, Any]) -> set[str] | None:
    """The closed set of values a property takes (through ``$ref`` and ``X | None``), if any."""
    for option in [prop, *prop.get("anyOf", [])]:
        target = schema["$defs"][option["$ref"].rsplit("/", 1)[1]] if "$ref" in option else option
        if "enum" in target:
            return {str(v) for v in target["enum"]}
    return None


@pytest.mark.parametrize("name", [n for n, t in DOCUMENT_TYPES.items() if not t.server_only])
def test_published_schema_labels_every_field_zh_then_en(name: str) -> None:
    doc_type = DOCUMENT_TYPES[name]
    schema = json_schemas()[name][doc_type.current_version]
    assert schema["title"] == f"{doc_type.label_zh} / {doc_type.label_en}"
    problems = []
    for field, prop in _properties(schema):
        if field in {"type", "schema_version"}:
            continue
        label = prop.get("x-label")
        if not label or not CHINESE.search(label["zh"]) or not label["en"]:
            problems.append(f"{field}: no bilingual label")
        choices = _choices(schema, prop)
        labels = prop.get("x-enum-labels") or {}
        if choices is not None and set(labels) != choices:
            problems.append(f"{field}: choice labels {sorted(labels)} != choices {sorted(choices)}")
        if any(not CHINESE.search(v["zh"]) for v in labels.values()):
            problems.append(f"{field}: a choice label without Chinese")
    assert not problems, f"{name}: {problems}"
