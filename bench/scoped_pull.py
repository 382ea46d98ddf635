"""A volunteer of one grid pulls their scope from a store of six grids: gateway vs filtered replication.

``python -m bench.scoped_pull [--quick]``. The store holds 60,000 findings (quick: 6,000), a sixth in
each demo grid. Through the gateway the store is one CouchDB database per grid, and the volunteer
of ZR01 pulls the reference data and ZR01. The baseline, in the same run, is what one would do
with plain CouchDB: all findings in one database and a filtered replication
(``filter: scope/by_grid``, ``query_params: {grid: ZR01}``), which evaluates the filter on every
document of the store. The gateway runs as its own process so that its memory can be read
(``/api/metrics``); it is measured on a store a fifth of the size too, to show that its memory does
not grow with the store. Target: the gateway pull no slower than the filtered replication.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import shapely

from bench._common import emit, machine, parse_args
from field_schema import load_taxonomy
from geo import load_areas
from geo.demo_district import DEMO_GRID_FILE
from server.db import make_engine, make_session_maker
from server.db.models import Role, UserCreate
from server.devcouch import LocalCouch, free_port
from server.provision import setup, upsert_user
from server.settings import Settings
from sync.couch import CouchClient
from tests.support.docs import hazard
from tests.support.stack import COUCH_ADMIN
from tests.support.tablet import Tablet

FULL, QUICK = 60_000, 6_000
GRIDS = ("ZR01", "ZR02", "ZR03", "ZR04", "ZR05", "ZR06")
BASELINE_DB = "scoped_baseline"
FILTER = "function (doc, req) { return doc.grid_hint === req.query.grid; }"
TARGET_RATIO = 1.0


def _points() -> dict[str, tuple[float, float]]:
    areas = {a.code: a for a in load_areas(DEMO_GRID_FILE)}
    return {code: (c.x, c.y) for code in GRIDS for c in [shapely.centroid(areas[code].geometry)]}


def _docs(start: int, stop: int, points: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    docs = []
    for i in range(start, stop):
        grid = GRIDS[i % len(GRIDS)]
        doc = hazard(
            f"seed-{grid.lower()}", doc_id=f"sp-{i:06d}", point=points[grid], photo=False, grid_hint=grid
        )
        doc["observed_at"] = "2026-11-20T09:00:00+08:00"
        docs.append(doc)
    return docs


async def _seed(couch: CouchClient, settings: Settings, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), 2000):
        batch = docs[start : start + 2000]
        by_grid: dict[str, list[dict[str, Any]]] = {}
        for doc in batch:
            by_grid.setdefault(str(doc["grid_hint"]), []).append(doc)
        for grid, grid_docs in by_grid.items():
            await couch.bulk_docs(settings.couch.grid_db(grid), grid_docs)
        await couch.bulk_docs(BASELINE_DB, batch)


class Gateway:
    """``gridpatrol serve`` in its own process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the gateway did not start")
            time.sleep(0.2)

    def metrics(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(
            self.url + "/api/metrics", auth=("root", "root-password"), timeout=10
        ).json()
        return answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


async def _pull(
    url: str, user: str, password: str, options: dict[str, Any] | None = None
) -> tuple[float, int]:
    tablet = await Tablet.open(url, username=user, password=password)
    try:
        started = time.perf_counter()
        result = await tablet.pull(**(options or {}))
        seconds = time.perf_counter() - started
        rows = (await tablet.call("all_docs", options={"startkey": "sp-", "endkey": "sp-~"}))["rows"]
    finally:
        await tablet.close()
    if not result["ok"]:
        raise SystemExit(f"pull from {url} failed: {result}")
    return seconds, len(rows)


async def _gateway_pull(env: dict[str, str]) -> tuple[float, int, dict[str, Any]]:
    gateway = Gateway(env)
    try:
        seconds, found = await _pull(gateway.url + "/sync/field", "vol1", "vol1-password")
        return seconds, found, gateway.metrics()
    finally:
        gateway.stop()


async def main() -> None:
    args = parse_args(__doc__ or "")
    total = QUICK if args.quick else FULL
    small = total // 5
    points = _points()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        couch_server = LocalCouch(folder / "couch", in_memory=True)
        couch_server.start()
        couch_server.ensure_admin(*COUCH_ADMIN)
        env = {
            **os.environ,
            "GRIDPATROL_ENV": "test",
            "GRIDPATROL_DATA_DIR": str(folder),
            "GRIDPATROL_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
            "GRIDPATROL_COUCH_URL": couch_server.url,
            "GRIDPATROL_COUCH_USER": COUCH_ADMIN[0],
            "GRIDPATROL_COUCH_PASSWORD": COUCH_ADMIN[1],
            "GRIDPATROL_SECRET_KEY": "bench-" + "k" * 40,
        }
        settings = Settings.from_env(env)
        try:
            await setup(settings, DEMO_GRID_FILE, load_taxonomy())
            engine = make_engine(settings.database)
            sessions = make_session_maker(engine)
            await upsert_user(
                sessions,
                UserCreate(username="vol1", password="vol1-password", role=Role.VOLUNTEER, grids=["ZR01"]),
            )
            await upsert_user(
                sessions, UserCreate(username="root", password="root-password", role=Role.ADMIN)
            )
            await engine.dispose()
            async with CouchClient(couch_server.url, *COUCH_ADMIN) as couch:
                await couch.create_db(BASELINE_DB)
                await couch.put_doc(BASELINE_DB, {"_id": "_design/scope", "filters": {"by_grid": FILTER}})
                await _seed(couch, settings, _docs(0, small, points))
                small_s, small_found, small_metrics = await _gateway_pull(env)
                await _seed(couch, settings, _docs(small, total, points))
            gateway_s, gateway_found, full_metrics = await _gateway_pull(env)
            filtered_s, filtered_found = await _pull(
                f"{couch_server.url}/{BASELINE_DB}",
                *COUCH_ADMIN,
                {"filter": "scope/by_grid", "query_params": {"grid": "ZR01"}},
            )
        finally:
            couch_server.stop()

    scope = total // len(GRIDS)
    if gateway_found != scope or filtered_found != scope or small_found != small // len(GRIDS):
        raise SystemExit(f"expected {scope} findings, gateway {gateway_found}, filtered {filtered_found}")
    ratio = gateway_s / filtered_s
    filtered_read = total + scope  # the filter reads every document, then the scope is fetched
    mb = 1024 * 1024
    print(f"machine: {machine()}")
    print(f"store: {total} findings in 6 grids; scope of the volunteer: {scope} (ZR01)")
    print("                               seconds   docs read on the server   peak RSS")
    for size, seconds, measured in ((small, small_s, small_metrics), (total, gateway_s, full_metrics)):
        peak = measured["peak_rss_bytes"] / mb
        print(f"gateway (store {size:>6})       {seconds:>8.1f} {measured['docs_read']:>14} {peak:>17.0f} MB")
    print(f"filtered replication           {filtered_s:>8.1f} {filtered_read:>14}")
    print(f"gateway / filtered replication: {ratio:.2f} (target <= {TARGET_RATIO})")
    emit(
        "scoped_pull",
        {
            "store_docs": total,
            "scope_docs": scope,
            "gateway_s": round(gateway_s, 1),
            "filtered_s": round(filtered_s, 1),
            "gateway_docs_read": full_metrics["docs_read"],
            "filtered_docs_read": filtered_read,
            "gateway_peak_rss_mb_small_store": round(small_metrics["peak_rss_bytes"] / mb),
            "gateway_peak_rss_mb_full_store": round(full_metrics["peak_rss_bytes"] / mb),
        },
        ratio,
        TARGET_RATIO,
    )


if __name__ == "__main__":
    asyncio.run(main())
