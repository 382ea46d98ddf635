"""A grid leader's resolution of a hard conflict is committed in SQL before it is written to
CouchDB, so no failure between the two loses it or the leader's name on it. A tap in front of the
real CouchDB fails the resolution's write for the API — after CouchDB stored it, or before CouchDB
saw it — and a worker completes the decision; a write CouchDB refuses goes back to the leader."""

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from server.db.models import CaseEvent, Conflict
from tests.conftest import TabletFactory
from tests.support.conflicts import converged, edit, hard_conflict, two_tablets_with
from tests.support.couch_tap import CouchTap, merge_write
from tests.support.docs import hazard, make_png, photo_attachment
from tests.support.stack import AppServer, Stack, app_without_couchdb
from tests.support.tablet import Tablet

pytestmark = pytest.mark.integration

API_LEASE_S = 0.5
"""How long the API's claim on a leader's resolution lasts in these tests (then a worker may)."""


async def _hard_conflict(stack: Stack, tablet_factory: TabletFactory, doc_id: str) -> tuple[Tablet, Tablet]:
    doc = hazard("vol1", doc_id=doc_id, note="三楼飞线", photo=False)
    return await hard_conflict(stack, tablet_factory, doc, ("三楼飞线，已劝离", "四楼飞线"))


@asynccontextmanager
async def _api_through_tap(
    stack: Stack, *, forward_first: bool, status: int = 503
) -> AsyncIterator[tuple[Callable[[], httpx.AsyncClient], CouchTap]]:
    """The app again, on the same SQL store, whose CouchDB is behind a tap that answers the first
    resolution write with ``status``."""

    tap = await CouchTap(
        target=stack.settings.couch.url,
        match=merge_write(),
        forward_first=forward_first,
        status=status,
    ).start()
    settings = dataclasses.replace(
        stack.settings,
        couch=dataclasses.replace(stack.settings.couch, url=tap.url),
        worker=dataclasses.replace(stack.settings.worker, lease_s=API_LEASE_S),
    )
    app = AppServer(settings)
    await asyncio.to_thread(app.start)

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=app.url, auth=stack.auth("lead1"), timeout=30)

    try:
        yield client, tap
    finally:
        await asyncio.to_thread(app.stop)
        await tap.stop()


async def _open_conflict(client: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    conflict = (await client.get("/api/conflicts", params={"status": "open"})).json()["data"][0]
    return conflict["id"], {b["body"]["note"]: b["rev"] for b in conflict["branches"]}


async def _state(stack: Stack, conflict_id: int) -> tuple[Conflict, list[CaseEvent]]:
    async with stack.runtime.sessions() as session:
        conflict = await session.get(Conflict, conflict_id)
        events = (
            await session.exec(
                select(CaseEvent).where(col(CaseEvent.action).like("conflict_%")).order_by(col(CaseEvent.id))
            )
        ).all()
    assert conflict is not None
    return conflict, list(events)


def _resolved_events(events: list[CaseEvent]) -> list[dict[str, Any]]:
    return [{"actor": e.actor, **e.details} for e in events if e.action == "conflict_resolved"]


@pytest.mark.parametrize("landed", [True, False], ids=["stored-then-failed", "never-stored"])
async def test_a_resolution_the_api_could_not_finish_is_completed_in_the_leaders_name(
    stack: Stack, tablet_factory: TabletFactory, landed: bool
) -> None:
    first, second = await _hard_conflict(stack, tablet_factory, "h-outbox")
    async with _api_through_tap(stack, forward_first=landed) as (client, tap), client() as api:
        conflict_id, notes = await _open_conflict(api)
        answer = await api.post(
            f"/api/conflicts/{conflict_id}/resolve",
            json={"choose": notes["四楼飞线"], "reason": "现场核实为四楼"},
        )
        assert tap.hits == 1
        # Recorded, not lost: the leader is told it will be written, and cannot decide twice.
        assert answer.status_code == 202, answer.text
        pending = answer.json()
        assert pending["status"] == "merge_pending" and pending["status_label_zh"] == "网格长裁决待写回"
        assert pending["resolution"]["by"] == "lead1" and pending["resolution"]["reason"] == "现场核实为四楼"
        again = await api.post(
            f"/api/conflicts/{conflict_id}/resolve", json={"choose": notes["三楼飞线，已劝离"]}
        )
        assert again.status_code == 409
        assert "正在写回" in again.json()["reason"]
    conflict, events = await _state(stack, conflict_id)
    assert conflict.status == "merge_pending" and conflict.resolution is not None
    assert conflict.resolution["by"] == "lead1"

    await asyncio.sleep(API_LEASE_S + 0.2)  # the API's claim lapses; a worker takes the row over
    stats = await stack.run_worker()
    assert stats.get("conflict_resolved") == 1, stats
    conflict, events = await _state(stack, conflict_id)
    assert conflict.status == "resolved" and conflict.resolved_by == "lead1"
    assert conflict.result_rev == conflict.merge_rev
    (resolved,) = _resolved_events(events)
    assert resolved["actor"] == "lead1" and resolved["result_rev"] == conflict.result_rev
    assert resolved["choose"] == notes["四楼飞线"]
    assert not [e for e in events if e.action == "conflict_superseded"]
    for seen in await converged(stack, "h-outbox", first, second):
        assert seen["note"] == "四楼飞线"
    # Another pass changes nothing: one resolution, one event.
    await stack.run_worker()
    _, events_after = await _state(stack, conflict_id)
    assert len(_resolved_events(events_after)) == 1


async def test_a_resolution_couchdb_refuses_goes_back_to_the_leader(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    first, second = await _hard_conflict(stack, tablet_factory, "h-refused")
    async with _api_through_tap(stack, forward_first=False, status=400) as (client, tap), client() as api:
        conflict_id, notes = await _open_conflict(api)
        refused = await api.post(f"/api/conflicts/{conflict_id}/resolve", json={"choose": notes["四楼飞线"]})
        assert tap.hits == 1
        assert refused.status_code == 409, refused.text
        assert "重新裁决" in refused.json()["reason"]
        conflict, events = await _state(stack, conflict_id)
        assert conflict.status == "open" and conflict.resolution is None and conflict.merge_rev is None
        assert [e.action for e in events][-1] == "conflict_resolution_refused"
        # The tap let its one refusal go: the leader decides again and it is written.
        ok = await api.post(
            f"/api/conflicts/{conflict_id}/resolve", json={"choose": notes["三楼飞线，已劝离"]}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "resolved" and ok.json()["resolved_by"] == "lead1"
    conflict, events = await _state(stack, conflict_id)
    (resolved,) = _resolved_events(events)
    assert resolved["choose"] == notes["三楼飞线，已劝离"] and resolved["actor"] == "lead1"
    await stack.run_worker()
    for seen in await converged(stack, "h-refused", first, second):
        assert seen["note"] == "三楼飞线，已劝离"


async def test_a_photo_comes_from_the_branch_the_leader_named_for_it(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    """Both tablets replaced the photo and the note: the leader keeps the winner's note and the
    other branch's photo — those bytes, not the winner's photo under the same name."""
    first, second = await two_tablets_with(
        stack, tablet_factory, hazard("vol1", doc_id="h-photo", note="原始")
    )
    await edit(first, "h-photo", note="甲", _attachments={"photo-1.png": photo_attachment(seed=2)})
    await edit(second, "h-photo", note="乙", _attachments={"photo-1.png": photo_attachment(seed=3)})
    await first.push()
    await second.push()
    assert (await stack.run_worker())["conflict_hard"] == 1
    async with stack.http("lead1") as api:
        conflict = (await api.get("/api/conflicts", params={"status": "open"})).json()["data"][0]
        assert set(conflict["fields"]) == {"note", "_attachments/photo-1.png"}
        winner = conflict["winner_rev"]
        (other,) = [b for b in conflict["branches"] if b["rev"] != winner]
        resolved = await api.post(
            f"/api/conflicts/{conflict['id']}/resolve",
            json={"fields": {"note": winner, "_attachments/photo-1.png": other["rev"]}},
        )
        assert resolved.status_code == 200, resolved.text
    stored = await stack.runtime.couch.get_doc(
        stack.settings.couch.grid_db("ZR01"), "h-photo", params={"attachments": "true", "conflicts": "true"}
    )
    assert "_conflicts" not in stored
    assert stored["note"] == next(b["body"]["note"] for b in conflict["branches"] if b["rev"] == winner)
    seed = 3 if other["body"]["note"] == "乙" else 2
    assert base64.b64decode(stored["_attachments"]["photo-1.png"]["data"]) == make_png(32, 32, seed)


async def test_resolving_while_couchdb_is_away_is_a_503_and_records_nothing(
    stack: Stack, tablet_factory: TabletFactory
) -> None:
    await _hard_conflict(stack, tablet_factory, "h-away")
    async with (
        app_without_couchdb(stack.settings) as app,
        httpx.AsyncClient(base_url=app.url, auth=stack.auth("lead1"), timeout=30) as api,
    ):
        conflict_id, notes = await _open_conflict(api)
        answer = await api.post(f"/api/conflicts/{conflict_id}/resolve", json={"choose": notes["四楼飞线"]})
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "service_unavailable" and "文档库" in answer.json()["reason"]
    assert "retry-after" in answer.headers
    conflict, _ = await _state(stack, conflict_id)
    assert conflict.status == "open" and conflict.resolution is None
