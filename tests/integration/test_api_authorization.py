"""Role × grid on every /api endpoint, probed against a running stack: the denials that work today,
so they stay working. Each row names who asks, what, and the status they must get (never 2xx)."""

from typing import Any

import pytest

from server.db.models import Case, Role
from tests.support.cases import add_case, add_department_user
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_denials_by_role_and_grid(stack: Stack) -> None:
    home, other, _ = stack.micro_grids_of_zr01()
    await stack.add_user("microlead", Role.GRID_LEADER, [home])
    await stack.add_user("microvol", Role.VOLUNTEER, [other])
    await add_department_user(stack, "police1", "police")
    await add_department_user(stack, "fire1", "fire")
    sessions = stack.runtime.sessions
    zr01 = (await add_case(sessions, grid="ZR01", micro_grid=other)).id
    zr01b = (await add_case(sessions, grid="ZR01")).id
    zr02 = (await add_case(sessions, grid="ZR02", lon=121.40, lat=31.27)).id
    async with stack.http("lead1") as lead:
        sent = await lead.post(
            f"/api/cases/{zr01}/dispatches", json={"departments": ["police"], "reason": "吹哨派单"}
        )
    assert sent.status_code == 201, sent.text
    dispatch = sent.json()["dispatches"][0]["id"]

    step = {"to": "coordinating", "reason": "核实无误"}
    whistle = {"departments": ["police"], "reason": "吹哨派单"}
    follow = {"method": "phone", "satisfaction": "satisfied", "note": "回访"}
    rows: list[tuple[str | None, str, str, dict[str, Any] | None, int]] = [
        # no credentials
        (None, "GET", "/api/cases", None, 401),
        (None, "GET", f"/api/cases/{zr01}", None, 401),
        (None, "GET", "/api/conflicts", None, 401),
        (None, "GET", "/api/refusals", None, 401),
        (None, "GET", "/api/users", None, 401),
        (None, "GET", "/api/sync/status", None, 401),
        (None, "GET", "/api/me", None, 401),
        # volunteers have no case API
        ("vol1", "GET", "/api/cases", None, 403),
        ("vol1", "GET", f"/api/cases/{zr01}", None, 403),
        ("vol1", "POST", f"/api/cases/{zr01}/transitions", step, 403),
        ("vol1", "POST", f"/api/cases/{zr01}/dispatches", whistle, 403),
        ("vol1", "POST", f"/api/cases/{zr01}/merge", {"other_case_id": zr01b}, 403),
        ("vol1", "GET", "/api/conflicts", None, 403),
        ("vol1", "GET", "/api/refusals", None, 403),
        ("vol1", "GET", "/api/sync/status/vol1b", None, 403),
        # a ZR01 leader and ZR02: the case does not exist for them, filters do not widen
        ("lead1", "GET", f"/api/cases/{zr02}", None, 404),
        ("lead1", "POST", f"/api/cases/{zr02}/transitions", step, 404),
        ("lead1", "POST", f"/api/cases/{zr02}/dispatches", whistle, 404),
        ("lead1", "POST", f"/api/cases/{zr02}/follow-ups", follow, 404),
        ("lead1", "POST", f"/api/cases/{zr02}/split", {"findings": ["x"], "reason": "拆分"}, 404),
        ("lead1", "POST", f"/api/cases/{zr01}/merge", {"other_case_id": zr02}, 404),
        ("lead1", "POST", f"/api/cases/{zr02}/merge", {"other_case_id": zr01}, 404),
        ("lead1", "GET", f"/api/cases/{zr02}/conflicts", None, 404),
        ("lead1", "GET", f"/api/cases/{zr02}/findings/doc/photos/photo-1.png", None, 404),
        ("lead1", "GET", "/api/cases?grid=ZR02", None, 403),
        ("lead1", "GET", "/api/conflicts?grid=ZR02", None, 403),
        ("lead1", "GET", "/api/refusals?grid=ZR02", None, 403),
        ("lead1", "GET", "/api/sync/status/vol2", None, 403),
        ("lead1", "GET", "/api/sync/status/nobody-at-all", None, 403),  # same answer: no enumeration
        ("lead2", "GET", f"/api/cases/{zr01}", None, 404),
        ("lead2", "POST", f"/api/cases/{zr01}/dispatches/{dispatch}/cancel", {"reason": "撤回派单"}, 404),
        # a micro-grid leader does not reach the rest of ZR01
        ("microlead", "GET", f"/api/cases/{zr01}", None, 404),
        ("microlead", "POST", f"/api/cases/{zr01}/transitions", step, 404),
        ("microlead", "GET", "/api/cases?grid=ZR01", None, 403),
        ("microlead", "GET", "/api/refusals?grid=ZR01", None, 403),
        ("microlead", "GET", f"/api/refusals?grid={other}", None, 403),
        ("microlead", "GET", "/api/sync/status/microvol", None, 403),
        ("microlead", "GET", "/api/sync/status/vol1", None, 403),
        # coordinators read and act on nothing
        ("coord", "POST", f"/api/cases/{zr01}/transitions", step, 403),
        ("coord", "POST", f"/api/cases/{zr01}/dispatches", whistle, 403),
        ("coord", "POST", f"/api/cases/{zr01}/dispatches/{dispatch}/cancel", {"reason": "撤回派单"}, 403),
        ("coord", "POST", f"/api/cases/{zr01}/follow-ups", follow, 403),
        ("coord", "POST", f"/api/cases/{zr01}/merge", {"other_case_id": zr01b}, 403),
        ("coord", "GET", "/api/refusals", None, 403),
        ("coord", "GET", "/api/sync/status/vol1", None, 403),
        # department accounts: only their own dispatches
        ("fire1", "GET", f"/api/cases/{zr01}", None, 404),
        ("fire1", "POST", f"/api/cases/{zr01}/dispatches/{dispatch}/acknowledge", {}, 404),
        ("fire1", "GET", "/api/cases?department=police", None, 403),
        ("police1", "GET", f"/api/cases/{zr01b}", None, 404),
        ("police1", "POST", f"/api/cases/{zr01}/transitions", step, 403),
        ("police1", "POST", f"/api/cases/{zr01}/dispatches/{dispatch}/cancel", {"reason": "撤回派单"}, 403),
        ("police1", "GET", "/api/refusals", None, 403),
        ("police1", "GET", "/api/conflicts", None, 403),
        # admin-only endpoints
        ("lead1", "GET", "/api/users", None, 403),
        ("lead1", "GET", "/api/users/vol1", None, 403),
        ("lead1", "PATCH", "/api/users/lead1", {"role": "admin"}, 403),
        ("lead1", "POST", "/api/users", {"username": "x1", "password": "x1-password", "role": "admin"}, 403),
        ("coord", "GET", "/api/users", None, 403),
        ("lead1", "GET", "/api/audit/admin", None, 403),
        ("lead1", "GET", "/api/metrics", None, 403),
        ("lead1", "GET", "/api/taxonomy", None, 403),
        (
            "lead1",
            "POST",
            "/api/taxonomy/departments",
            {"code": "xdept", "name_zh": "某部门", "name_en": "Some department"},
            403,
        ),
        ("lead1", "POST", "/api/taxonomy/reload", None, 403),
        ("lead1", "GET", "/api/taxonomy/changes", None, 403),
    ]
    wrong = []
    for username, method, path, body, expected in rows:
        known = username is None or username in stack.users
        auth = None if known else (username, f"{username}-password")  # department accounts
        async with stack.http(username if known else None) as client:
            answer = await client.request(method, path, json=body, auth=auth or client.auth)
        if answer.status_code != expected:
            wrong.append((username, method, path, expected, answer.status_code, answer.text[:200]))
    assert not wrong, "\n".join(map(str, wrong))

    # Lists and their counts stay inside the scope, whatever the filters ask for.
    listed = [
        ("lead1", {}, {zr01, zr01b}),
        ("lead1", {"micro_grid": other}, {zr01}),
        ("lead2", {}, {zr02}),
        ("lead2", {"department": "police"}, set()),
        ("lead2", {"micro_grid": other}, set()),
        ("microlead", {}, set()),
        ("police1", {}, {zr01}),
        ("police1", {"grid": "ZR02"}, set()),
        ("fire1", {}, set()),
        ("coord", {"department": "police"}, {zr01}),
    ]
    for username, params, expected_ids in listed:
        known = username in stack.users
        auth = None if known else (username, f"{username}-password")
        async with stack.http(username if known else None) as client:
            answer = await client.get("/api/cases", params=params, auth=auth or client.auth)
        assert answer.status_code == 200, (username, params, answer.text)
        page = answer.json()
        assert {c["id"] for c in page["data"]} == expected_ids, (username, params)
        assert page["count"] == len(expected_ids), (username, params)


async def test_a_leader_of_a_micro_grid_reads_and_acts_on_its_cases_only(stack: Stack) -> None:
    """A grid leader scoped to a micro-grid has the case API of that micro-grid: its cases listed,
    counted and found by text, readable and movable through the loop; the rest of the grid stays
    404, and an unassigned case of the grid goes to the grid's leaders."""
    home, other, _ = stack.micro_grids_of_zr01()
    await stack.add_user("microlead", Role.GRID_LEADER, [home])
    sessions = stack.runtime.sessions
    mine = (await add_case(sessions, grid="ZR01", micro_grid=home, summary="楼道飞线充电")).id
    theirs = (await add_case(sessions, grid="ZR01", micro_grid=other, summary="楼道飞线充电")).id
    unassigned = (await add_case(sessions, grid=None, summary="楼道飞线充电")).id
    async with stack.runtime.sessions() as session:
        row = await session.get(Case, unassigned)
        assert row is not None
        row.intake_grid = "ZR01"
        await session.commit()

    async with stack.http("microlead") as lead:
        for params in [{}, {"text": "飞线"}, {"micro_grid": home}]:
            page = (await lead.get("/api/cases", params=params)).json()
            assert ({c["id"] for c in page["data"]}, page["count"]) == ({mine}, 1), params
        assert (await lead.get(f"/api/cases/{mine}")).status_code == 200
        moved = await lead.post(
            f"/api/cases/{mine}/transitions", json={"to": "coordinating", "reason": "核实无误"}
        )
        assert moved.status_code in {200, 201}, moved.text
        for outside in [theirs, unassigned]:
            assert (await lead.get(f"/api/cases/{outside}")).status_code == 404
    async with stack.http("lead1") as lead1:
        page = (await lead1.get("/api/cases")).json()
        assert {c["id"] for c in page["data"]} == {mine, theirs, unassigned}


async def test_a_leader_sees_the_sync_state_of_the_people_within_their_scope_only(stack: Stack) -> None:
    """One of a grid's people works within it: a volunteer of the grid or of one of its micro-grids.
    A coordinator of six grids is not one of ZR01's people; a volunteer of the whole grid is not one
    of a micro-grid's."""
    home, other, _ = stack.micro_grids_of_zr01()
    await stack.add_user("microlead", Role.GRID_LEADER, [home])
    await stack.add_user("homevol", Role.VOLUNTEER, [home])
    await stack.add_user("othervol", Role.VOLUNTEER, [other])
    await stack.add_user("vol12", Role.VOLUNTEER, ["ZR01", "ZR02"])
    for leader, username, expected in [
        ("lead1", "vol1", 200),
        ("lead1", "homevol", 200),
        ("lead1", "othervol", 200),
        ("lead1", "coord", 403),
        ("lead1", "vol12", 403),
        ("lead1", "lead2", 403),
        ("microlead", "homevol", 200),
        ("microlead", "othervol", 403),
        ("microlead", "vol1", 403),
        ("microlead", "lead1", 403),
    ]:
        async with stack.http(leader) as client:
            answer = await client.get(f"/api/sync/status/{username}")
        assert answer.status_code == expected, (leader, username, answer.text)
