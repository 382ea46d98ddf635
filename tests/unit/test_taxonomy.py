"""The taxonomy as data: the shipped file, its checks, retired codes and code allocation."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from field_schema import (
    DEFAULT_TAXONOMY_FILE,
    TaxonomyError,
    load_taxonomy,
    next_category_code,
    next_concern_code,
    validate_document,
)

pytestmark = pytest.mark.unit


def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_TAXONOMY_FILE.read_text(encoding="utf-8"))
    return data


def test_shipped_file_has_four_categories_twelve_concerns_and_complete_entries() -> None:
    taxonomy = load_taxonomy()
    assert [c.name_zh for c in taxonomy.categories.values()] == [
        "城市运行",
        "公共管理",
        "公共服务",
        "公共安全",
    ]
    assert len(taxonomy.active_concerns()) == 12
    names = {c.name_zh for c in taxonomy.concerns.values()}
    assert {"乱停乱放", "飞线充电", "食品安全", "街面走失"} <= names
    for concern in taxonomy.concerns.values():
        assert concern.code.startswith(concern.category + "-")
        assert concern.deadline_working_days >= 1 and concern.radius_m > 0 and concern.departments
    assert taxonomy.raw["concerns"][0]["code"] == "01-01"
    assert taxonomy.raw["revision"] == 0


@pytest.mark.parametrize(
    ("change", "path", "zh"),
    [
        (lambda d: d["concerns"][0].update(category="09"), "concerns.0.category", "大类 09 不存在"),
        (
            lambda d: d["concerns"][0].update(departments=["army"]),
            "concerns.0.departments",
            "部门 army 不存在",
        ),
        (lambda d: d["concerns"][1].update(code="01-01"), "concerns.1.code", "代码 01-01 重复"),
        (lambda d: d["concerns"][2].update(code="01-09"), "concerns.2.code", "应以所属大类 02- 开头"),
        (
            lambda d: d["concerns"][0].update(default_severity="apocalyptic"),
            "concerns.0.default_severity",
            "",
        ),
        (lambda d: d["concerns"][0].update(radius_m=0), "concerns.0.radius_m", ""),
        (lambda d: d["concerns"][0].update(colour="red"), "concerns.0.colour", ""),
        (lambda d: d["categories"][0].update(retired=True), "concerns.0.retired", "已停用"),
    ],
)
def test_inconsistent_taxonomy_is_refused_naming_the_place(change: Any, path: str, zh: str) -> None:
    data = _data()
    change(data)
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(data)
    assert info.value.errors[0].path == path
    assert zh in info.value.errors[0].message_zh


def test_unreadable_file_is_a_taxonomy_error(tmp_path: Path) -> None:
    broken = tmp_path / "taxonomy.json"
    broken.write_text('{"version": 1,', encoding="utf-8")
    with pytest.raises(TaxonomyError, match="invalid JSON"):
        load_taxonomy(broken)


def test_retired_concern_still_validates_old_findings_but_is_not_offered() -> None:
    data = _data()
    data["concerns"][0]["retired"] = True
    taxonomy = load_taxonomy(data)
    assert taxonomy.concern("01-01") is not None and taxonomy.concern("01-01").retired  # type: ignore[union-attr]
    assert "01-01" not in {c.code for c in taxonomy.active_concerns()}
    finding = {
        "type": "hazard",
        "schema_version": 2,
        "author": "vol1",
        "device_id": "t",
        "observed_at": "2026-11-25T09:00:00+08:00",
        "location": {"lat": 31.25, "lon": 121.4, "datum": "gcj02", "accuracy_m": 5},
        "concern_code": "01-01",
    }
    validate_document(finding, taxonomy)


def test_new_codes_never_reuse_a_retired_one() -> None:
    taxonomy = load_taxonomy()
    used = set(taxonomy.concerns)
    assert next_concern_code(used, "04") == "04-08"
    assert next_concern_code(used | {"04-08"}, "04") == "04-09"  # 04-08 retired: still taken
    assert next_concern_code(used, "05") == "05-01"
    assert next_category_code(set(taxonomy.categories)) == "05"
    assert next_category_code({"01", "02", "07"}) == "08"


def test_document_round_trips() -> None:
    taxonomy = load_taxonomy()
    again = load_taxonomy(taxonomy.document())
    assert again == taxonomy
    assert copy.deepcopy(again.raw) == taxonomy.raw
