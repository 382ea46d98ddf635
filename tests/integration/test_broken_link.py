"""Issue 7's link: cuts on average every ~1.3 MB. Push and pull of 2,000 findings and 50 photos
through the gateway complete, end identical to an uncut run, and nothing is duplicated."""

import time

import pytest

from tests.support.proxy import TcpProxy
from tests.support.scenarios import field_docs, findings_per_case, real_bytes, sync_until_complete
from tests.support.stack import Stack
from tests.support.tablet import Tablet

pytestmark = pytest.mark.integration

DOCS, PHOTOS = 2000, 50
MEAN_BYTES_PER_CUT = 1_300_000


async def _state(tablet: Tablet) -> dict[str, str]:
    rows = (await tablet.call("all_docs", options={"startkey": "bl-", "endkey": "bl-~"}))["rows"]
    return {row["id"]: row["value"]["rev"] for row in rows}


async def test_push_and_pull_over_a_cutting_link(stack: Stack) -> None:
    docs = field_docs(DOCS, PHOTOS)
    proxy = await TcpProxy(
        "127.0.0.1", stack.app.port, mean_bytes_per_cut=MEAN_BYTES_PER_CUT, seed=2026
    ).start()
    url = proxy.url + "/sync/field"
    writer = await Tablet.open(url, username="vol1", password="vol1-password")
    cut_reader = await Tablet.open(url, username="vol1", password="vol1-password")
    clean_reader = await Tablet.open(stack.sync_url(), username="vol1", password="vol1-password")
    try:
        await writer.call("bulk", docs=docs)
        # Photos travel inline in the push body, so the app pushes small batches over a bad link.
        started = time.monotonic()
        pushed = await sync_until_complete(writer, "push", batch_size=10)
        push_s = time.monotonic() - started
        push_cuts = proxy.stats.cuts
        grid_db = stack.settings.couch.grid_db("ZR01")
        stored = await stack.runtime.couch.all_docs(grid_db, params={"startkey": '"bl-"', "endkey": '"bl-~"'})
        assert len(stored["rows"]) == DOCS

        merged = await stack.run_worker()
        # all written at one spot with one concern: the same problem, so one case holds them all
        assert merged["created"] + merged.get("joined", 0) == DOCS
        assert (await stack.run_worker()).get("created", 0) == 0
        assert sum((await findings_per_case(stack)).values()) == DOCS

        before_pull = proxy.stats.bytes_down
        started = time.monotonic()
        pulled = await sync_until_complete(cut_reader, "pull")
        pull_s = time.monotonic() - started
        pull_bytes = proxy.stats.bytes_down - before_pull
        await clean_reader.pull()
        cut_state, clean_state = await _state(cut_reader), await _state(clean_reader)
        assert len(cut_state) == DOCS
        assert cut_state == clean_state
        photo = await cut_reader.call("attachment", doc_id="bl-00007", name="photo.png")
        assert photo["length"] > 90_000

        data = real_bytes(docs)
        print(f"push: {pushed.count} attempts, {push_cuts} cuts, {push_s:.0f}s")
        megabytes = f"{pull_bytes / 1e6:.1f} MB for {data / 1e6:.1f} MB of data"
        print(f"pull: {pulled.count} attempts, {pull_s:.0f}s, {megabytes}")
        assert proxy.stats.cuts > push_cuts  # the pull was cut too
        assert pull_bytes <= 2 * data
    finally:
        for tablet in (writer, cut_reader, clean_reader):
            await tablet.close()
        await proxy.stop()

    async with stack.http("lead1") as leader:
        assert (await leader.get("/api/cases", params={"limit": 1})).json()["count"] == len(
            await findings_per_case(stack)
        )
