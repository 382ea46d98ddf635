"""Per-user sync state that does not lie, and ``_changes`` pages bounded by bytes."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import TabletFactory
from tests.support.docs import hazard, photo_attachment
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_sync_status_follows_push_pull_and_pending(stack: Stack, tablet_factory: TabletFactory) -> None:
    async with stack.http("vol1b") as client:
        before = (await client.get("/api/sync/status")).json()
    assert before["last_pull_at"] is None and before["last_push_at"] is None
    assert before["up_to_date"] is False
    assert before["summary_zh"] == "尚未从服务器同步"

    reader = await tablet_factory("vol1b")
    await reader.pull()
    async with stack.http("vol1b") as client:
        synced = (await client.get("/api/sync/status")).json()
    assert synced["up_to_date"] is True
    assert synced["pending_docs"] == 0
    assert synced["last_pull_at"].endswith("+08:00")

    writer = await tablet_factory("vol1")
    for i in range(7):
        await writer.put(hazard("vol1", doc_id=f"pending-{i}", photo=False))
    await writer.push()
    async with stack.http("vol1") as client:
        pushed = (await client.get("/api/sync/status")).json()
    assert pushed["last_push_at"] is not None
    assert [r["direction"] for r in pushed["replications"]] == ["push"]

    async with stack.http("vol1b") as client:
        behind = (await client.get("/api/sync/status")).json()
    assert behind["up_to_date"] is False
    assert behind["pending_docs"] == 7
    assert "7" in behind["summary_zh"]

    async with stack.http("lead1") as leader:
        seen_by_leader = await leader.get("/api/sync/status/vol1b")
        assert seen_by_leader.json()["pending_docs"] == 7
    async with stack.http("lead2") as other_leader:
        assert (await other_leader.get("/api/sync/status/vol1b")).status_code == 403
    async with stack.http("vol2") as colleague:
        assert (await colleague.get("/api/sync/status/vol1b")).status_code == 403

    await reader.pull()
    async with stack.http("vol1b") as client:
        assert (await client.get("/api/sync/status")).json()["pending_docs"] == 0


async def _photo_pages(
    stack: Stack, user: str, checkpoint_seq: Callable[[dict[str, Any]], object]
) -> list[int]:
    """Photos per ``_changes`` page of a whole pull by ``user``; after each page a checkpoint is
    written whose ``last_seq`` is ``checkpoint_seq(page)``, as PouchDB does after each batch."""
    sizes = []
    async with stack.http(user) as client:
        since = None
        while True:
            params = {"limit": "100", "style": "all_docs"}
            if since is not None:
                params["since"] = since
            page = (await client.get("/sync/field/_changes", params=params)).json()
            if not page["results"]:
                break
            photos = sum(1 for row in page["results"] if row["id"].startswith("photo-"))
            if photos:
                sizes.append(photos)
            since = page["last_seq"]
            checkpoint = {"session_id": "s1", "last_seq": checkpoint_seq(page)}
            written = await client.put(f"/sync/field/_local/{user}-checkpoint", json=checkpoint)
            assert written.status_code == 201
    assert sum(sizes) == 12
    return sizes


async def test_changes_pages_stop_at_the_byte_budget(stack: Stack, tablet_factory: TabletFactory) -> None:
    writer = await tablet_factory("vol1")
    for i in range(12):
        doc = hazard("vol1", doc_id=f"photo-{i:02d}", photo=False)
        doc["_attachments"] = {"p.png": photo_attachment(seed=i, side=150)}  # ~68 KB each
        await writer.put(doc)
    await writer.push()

    # 12 × ~68 KB cannot fit one 256 KB page. Checkpoints that name the tablet's own sequence (a
    # push's) say nothing of what reached it: every page stays at the first budget.
    steady = await _photo_pages(stack, "vol1", lambda page: 17)
    assert len(steady) >= 4
    assert all(size == steady[0] for size in steady[:-1])
    assert steady[0] * 68_000 <= stack.settings.gateway.changes_byte_budget
    # A pull checkpoint naming the page's own token confirms it arrived: the next pages grow.
    growing = await _photo_pages(stack, "vol1b", lambda page: page["last_seq"])
    assert growing[0] == steady[0]
    assert growing[1] > growing[0]
    assert len(growing) < len(steady)

    reader = await tablet_factory("vol1")
    pulled = await reader.pull()
    assert pulled["ok"] is True
    assert (
        len((await reader.call("all_docs", options={"startkey": "photo-", "endkey": "photo-~"}))["rows"])
        == 12
    )


async def test_who_may_not_see_a_user_cannot_tell_whether_they_exist(stack: Stack) -> None:
    for caller in ("vol1", "lead2", "coord"):
        async with stack.http(caller) as client:
            existing = await client.get("/api/sync/status/vol1b")
            unknown = await client.get("/api/sync/status/no-such-user")
        assert existing.status_code == unknown.status_code == 403, caller
        assert existing.json() == unknown.json()
    async with stack.http("lead1") as leader:
        assert (await leader.get("/api/sync/status/vol1b")).status_code == 200
        assert (await leader.get("/api/sync/status/no-such-user")).status_code == 403
    async with stack.http("root") as admin:
        assert (await admin.get("/api/sync/status/vol1b")).status_code == 200
        assert (await admin.get("/api/sync/status/no-such-user")).status_code == 404
    async with stack.http("vol1b") as themselves:
        assert (await themselves.get("/api/sync/status/vol1b")).json()["username"] == "vol1b"
