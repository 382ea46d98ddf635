"""``/api/taxonomy``: admins edit the taxonomy in SQL, codes are never reused, edits reach the
gateway and the reference database, and the taxonomy file can be changed and reloaded."""

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from field_schema import DEFAULT_TAXONOMY_FILE
from server.devcouch import LocalCouch
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

NEW_CONCERN = {
    "category": "04",
    "name_zh": "电梯困人",
    "name_en": "Person trapped in a lift",
    "default_severity": "urgent",
    "deadline_working_days": 1,
    "departments": ["fire", "housing"],
    "radius_m": 30,
}


async def _push(stack: Stack, doc: dict[str, Any]) -> dict[str, Any]:
    async with stack.http("vol1") as client:
        response = await client.post("/sync/field/_bulk_docs", json={"docs": [doc]})
    answer: dict[str, Any] = response.json()[0]
    return answer


async def _reference_taxonomy(stack: Stack) -> dict[str, Any]:
    return await stack.runtime.couch.get_doc(stack.settings.couch.reference_db, "taxonomy")


async def test_only_admins_manage_the_taxonomy(stack: Stack) -> None:
    async with stack.http("lead1") as leader, stack.http() as anonymous, stack.http("root") as admin:
        forbidden = await leader.get("/api/taxonomy")
        forbidden_write = await leader.post("/api/taxonomy/concerns", json=NEW_CONCERN)
        unauthenticated = await anonymous.get("/api/taxonomy")
        allowed = await admin.get("/api/taxonomy")
    assert forbidden.status_code == 403
    assert forbidden.json()["reason_zh"] == "只有管理员可以管理问题分类"
    assert forbidden_write.status_code == 403
    assert unauthenticated.status_code == 401
    body = allowed.json()
    assert allowed.status_code == 200
    assert body["revision"] == 1  # the file imported by setup
    assert len(body["concerns"]) == 12 and len(body["categories"]) == 4
    assert {d["code"] for d in body["departments"]} >= {"fire", "police", "market"}


async def test_new_concern_gets_a_fresh_code_reaches_the_gateway_and_is_never_reused(stack: Stack) -> None:
    before = await _push(stack, hazard("vol1", concern="04-08"))
    assert before["error"] == "forbidden" and "04-08" in before["reason"]

    async with stack.http("root") as admin:
        added = await admin.post("/api/taxonomy/concerns", json=NEW_CONCERN)
        assert added.status_code == 201, added.text
        assert added.json()["concern"]["code"] == "04-08"
        assert added.json()["revision"] == 2 and added.json()["published"] is True

        # the running gateway accepts it at once, and tablets get it from the reference database
        assert "error" not in await _push(stack, hazard("vol1", concern="04-08"))
        reference = await _reference_taxonomy(stack)
        assert reference["revision"] == 2
        assert "04-08" in {c["code"] for c in reference["concerns"]}

        retired = await admin.patch("/api/taxonomy/concerns/04-08", json={"retired": True})
        assert retired.json()["concern"]["retired"] is True
        # a finding made before the retirement still arrives from an offline tablet
        assert "error" not in await _push(stack, hazard("vol1", concern="04-08"))

        again = await admin.post("/api/taxonomy/concerns", json=NEW_CONCERN)
        assert again.json()["concern"]["code"] == "04-09"
        reuse = await admin.post("/api/taxonomy/concerns", json={**NEW_CONCERN, "code": "04-08"})
        assert reuse.status_code == 409
        assert reuse.json()["error"] == "code_taken"
        assert "已停用" in reuse.json()["reason_zh"]

        changes = (await admin.get("/api/taxonomy/changes")).json()["data"]
    assert [(c["code"], c["action"]) for c in changes[:3]] == [
        ("04-09", "added"),
        ("04-08", "retired"),
        ("04-08", "added"),
    ]
    assert all(c["actor"] == "root" and c["source"] == "api" for c in changes[:3])
    assert changes[0]["at"].endswith("+08:00")


async def test_edits_are_checked_as_a_whole(stack: Stack) -> None:
    async with stack.http("root") as admin:
        unknown_department = await admin.patch("/api/taxonomy/concerns/04-01", json={"departments": ["army"]})
        retire_busy_category = await admin.patch("/api/taxonomy/categories/04", json={"retired": True})
        missing = await admin.patch("/api/taxonomy/concerns/09-01", json={"name_en": "x"})
        bad_input = await admin.post("/api/taxonomy/concerns", json={**NEW_CONCERN, "radius_m": -5})
        category = await admin.post(
            "/api/taxonomy/categories", json={"name_zh": "应急管理", "name_en": "Emergencies"}
        )
        rename = await admin.patch("/api/taxonomy/concerns/04-01", json={"deadline_working_days": 2})
        unchanged = (await admin.get("/api/taxonomy")).json()
    assert unknown_department.status_code == 400
    assert unknown_department.json()["error"] == "invalid_taxonomy"
    assert "army" in unknown_department.json()["fields"][0]["reason_en"]
    assert retire_busy_category.status_code == 400
    assert "已停用" in retire_busy_category.json()["reason_zh"]
    assert missing.status_code == 404
    assert bad_input.status_code == 400
    assert category.status_code == 201 and category.json()["category"]["code"] == "05"
    assert rename.json()["concern"]["deadline_working_days"] == 2
    assert unchanged["revision"] == 3  # only the two successful edits counted
    assert next(c for c in unchanged["concerns"] if c["code"] == "04-01")["departments"] == [
        "fire",
        "community",
    ]


async def test_another_process_picks_up_the_edit(stack: Stack) -> None:
    # stack.runtime is a separate Runtime (the worker's), as another process would have
    assert stack.runtime.taxonomy.concern("04-08") is None
    async with stack.http("root") as admin:
        assert (await admin.post("/api/taxonomy/concerns", json=NEW_CONCERN)).status_code == 201
    stack.runtime._taxonomy_checked_at = 0.0  # as if the check interval had passed
    await stack.runtime.ensure_taxonomy()
    assert stack.runtime.taxonomy.concern("04-08") is not None
    assert stack.runtime.taxonomy.revision == 2


@pytest.fixture
async def file_stack(
    couch_server: LocalCouch, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Stack, Path]]:
    taxonomy_file = tmp_path / "taxonomy.json"
    shutil.copy(DEFAULT_TAXONOMY_FILE, taxonomy_file)
    running = await Stack.start(
        couch_url=couch_server.url,
        database_url=database_url,
        data_dir=tmp_path,
        extra_env={"GRIDPATROL_TAXONOMY_FILE": str(taxonomy_file)},
    )
    yield running, taxonomy_file
    await running.stop()


def _edit_file(path: Path, change: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


async def test_changing_the_file_and_reloading_merges_it_keeping_admin_edits(
    file_stack: tuple[Stack, Path],
) -> None:
    stack, taxonomy_file = file_stack
    async with stack.http("root") as admin:
        edited = await admin.patch("/api/taxonomy/concerns/01-01", json={"deadline_working_days": 3})
        assert edited.status_code == 200

        def change(data: dict[str, Any]) -> None:
            concerns = data["concerns"]
            next(c for c in concerns if c["code"] == "04-01")["name_en"] = "Flying-lead charging (e-bike)"
            concerns.append({**NEW_CONCERN, "code": "04-08", "category": "04"})
            data["concerns"] = [c for c in concerns if c["code"] != "02-02"]

        _edit_file(taxonomy_file, change)
        reloaded = await admin.post("/api/taxonomy/reload")
        assert reloaded.status_code == 200, reloaded.text
        report = reloaded.json()
        assert sorted((c["code"], c["action"]) for c in report["changes"]) == [
            ("02-02", "retired"),
            ("04-01", "edited"),
            ("04-08", "added"),
        ]
        assert report["revision"] == 3 and report["published"] is True
        taxonomy = (await admin.get("/api/taxonomy")).json()
        concerns = {c["code"]: c for c in taxonomy["concerns"]}
        assert concerns["04-01"]["name_en"] == "Flying-lead charging (e-bike)"
        assert concerns["01-01"]["deadline_working_days"] == 3  # the admin edit survives
        assert concerns["02-02"]["retired"] is True  # dropped from the file: retired, code kept
        assert (await _reference_taxonomy(stack))["revision"] == 3

        # reloading an unchanged file changes nothing
        idle = (await admin.post("/api/taxonomy/reload")).json()
        assert idle["changes"] == [] and idle["revision"] == 3

        # the file may not give a code another meaning
        _edit_file(
            taxonomy_file, lambda d: d["concerns"].append({**NEW_CONCERN, "code": "02-02", "category": "02"})
        )
        reuse = await admin.post("/api/taxonomy/reload")
        assert reuse.status_code == 400
        assert "代码不可复用" in reuse.json()["reason_zh"]
        assert (await admin.get("/api/taxonomy")).json()["revision"] == 3
    assert "error" not in await _push(stack, hazard("vol1", concern="04-08"))
