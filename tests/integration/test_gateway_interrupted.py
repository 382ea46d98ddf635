"""Replication cut mid-way resumes from its checkpoint and loses or duplicates nothing.

A TCP proxy between the tablet and the gateway cuts connections at random (seeded); the tablet
simply retries, as the app does when the link comes back."""

import asyncio
import base64
import json

import pytest

from tests.conftest import TabletFactory
from tests.support.docs import hazard
from tests.support.proxy import TcpProxy
from tests.support.scenarios import findings_per_case
from tests.support.stack import Stack
from tests.support.tablet import Tablet, TabletError

pytestmark = pytest.mark.integration

DOCS = 150
MAX_ATTEMPTS = 200


async def _until_done(tablet: Tablet, op: str) -> list[dict]:
    attempts: list[dict] = []
    for _ in range(MAX_ATTEMPTS):
        try:
            result = await tablet.call(op, options={"batch_size": 10})
        except TabletError as exc:
            attempts.append({"ok": False, "error": exc.error})
            continue
        attempts.append(result)
        if result.get("ok") and not result.get("errors"):
            return attempts
    raise AssertionError(f"{op} never completed: {attempts[-3:]}")


async def test_push_and_pull_survive_cuts(stack: Stack, tablet_factory: TabletFactory) -> None:
    proxy = await TcpProxy("127.0.0.1", stack.app.port, mean_bytes_per_cut=40_000, seed=7).start()
    try:
        writer = await Tablet.open(proxy.url + "/sync/field", username="vol1", password="vol1-password")
        for i in range(DOCS):
            await writer.put(hazard("vol1", doc_id=f"cut-{i:03d}", photo=i % 10 == 0))
        pushes = await _until_done(writer, "push")
        assert proxy.stats.cuts > 0
        assert len(pushes) > 1  # it was really interrupted
        assert pushes[-1]["docs_written"] < DOCS  # the last attempt resumed from a checkpoint

        grid_db = stack.settings.couch.grid_db("ZR01")
        stored = await stack.runtime.couch.all_docs(
            grid_db, params={"startkey": '"cut-"', "endkey": '"cut-~"'}
        )
        assert [row["id"] for row in stored["rows"]] == [f"cut-{i:03d}" for i in range(DOCS)]
        worker = await stack.run_worker()
        assert worker["created"] + worker.get("joined", 0) == DOCS  # written at one spot: joined
        again = await stack.run_worker()
        assert again.get("created", 0) == 0 and again.get("joined", 0) == 0
        assert sum((await findings_per_case(stack)).values()) == DOCS

        reader = await Tablet.open(proxy.url + "/sync/field", username="vol1", password="vol1-password")
        cuts_before = proxy.stats.cuts
        pulls = await _until_done(reader, "pull")
        assert proxy.stats.cuts > cuts_before
        assert pulls[-1]["docs_read"] < DOCS * 2
        rows = (await reader.call("all_docs", options={"startkey": "cut-", "endkey": "cut-~"}))["rows"]
        assert [row["id"] for row in rows] == [f"cut-{i:03d}" for i in range(DOCS)]
        statuses = (
            await reader.call("all_docs", options={"startkey": "status:cut-", "endkey": "status:cut-~"})
        )["rows"]
        assert len(statuses) == DOCS
        await writer.close()
        await reader.close()
    finally:
        await proxy.stop()

    async with stack.http("lead1") as leader:
        assert (await leader.get("/api/cases", params={"limit": 1})).json()["count"] == len(
            await findings_per_case(stack)
        )


async def test_a_body_cut_mid_upload_stores_nothing(stack: Stack) -> None:
    docs = [hazard("vol1", doc_id=f"half-{i}") for i in range(20)]
    body = json.dumps({"docs": docs, "new_edits": True}).encode()
    credentials = base64.b64encode(b"vol1:vol1-password").decode()
    head = (
        f"POST /sync/field/_bulk_docs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    _reader, writer = await asyncio.open_connection("127.0.0.1", stack.app.port)
    writer.write(head + body[: len(body) * 2 // 3])  # the first 13 documents, and part of the 14th
    await writer.drain()
    writer.transport.abort()
    await asyncio.sleep(0.5)
    stored = await stack.runtime.couch.all_docs(
        stack.settings.couch.grid_db("ZR01"), keys=[d["_id"] for d in docs]
    )
    assert all("error" in row for row in stored["rows"])
