"""End-to-end latency: a tablet pushes a finding → the case is visible in ``GET /api/cases``.

``python -m bench.latency [--quick]``. A real PouchDB tablet (node) pushes one hazard finding at a
time through the gateway, 60 times (quick: 15), one every ~0.3 s with some jitter. The worker runs
as in production: the ``gridpatrol worker`` command in its own process with its defaults (feeds
followed with ``_changes`` longpoll, batch size 200). For each finding the clock starts when the
tablet's ``push()`` is called and stops when a grid leader's ``GET /api/cases`` lists it (polled
every 20 ms).

Baseline, in the same run and for the same pushes: push → the document is readable in CouchDB
(the grid database, polled every 20 ms) — what sync alone costs. Ratio: p50 end-to-end / p50
baseline. Target: p99 end-to-end ≤ 3 s. Also shown: push → the finding's ``case_status`` document
readable in CouchDB (what the tablet's next pull brings back).
"""

import asyncio
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench._common import emit, machine, parse_args
from server.devcouch import LocalCouch
from sync.couch import CouchNotFound
from sync.writeback import status_doc_id
from tests.support.docs import ZR01_POINT, hazard
from tests.support.stack import COUCH_ADMIN, VENV_GRIDPATROL, Stack, stack_env
from tests.support.tablet import Tablet

FULL, QUICK = 60, 15
TARGET_P99_S = 3.0
POLL_S = 0.02


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _measure(stack: Stack, count: int, seed: int) -> tuple[list[float], list[float], list[float]]:
    rng = random.Random(seed)
    grid_db = stack.settings.couch.grid_db("ZR01")
    end_to_end: list[float] = []
    baseline: list[float] = []
    status: list[float] = []
    tablet = await Tablet.open(stack.sync_url(), username="vol1", password=stack.users["vol1"].password)
    try:
        async with stack.http("lead1") as leader:
            for i in range(count):
                # spread the points so that each finding opens its own case (and some join)
                point = (
                    ZR01_POINT[0] + rng.uniform(-0.002, 0.002),
                    ZR01_POINT[1] + rng.uniform(-0.002, 0.002),
                )
                doc_id = f"lat-{seed}-{i:04d}"
                await tablet.put(hazard("vol1", doc_id=doc_id, point=point, photo=i % 5 == 0))
                started = time.perf_counter()
                push = asyncio.create_task(tablet.push())
                in_couch: float | None = None
                while True:
                    if in_couch is None:
                        try:
                            await stack.runtime.couch.get_doc(grid_db, doc_id)
                            in_couch = time.perf_counter() - started
                        except CouchNotFound:
                            pass
                    body = (await leader.get("/api/cases", params={"limit": 200})).json()
                    if any(f["doc_id"] == doc_id for c in body["data"] for f in c["findings"]):
                        end_to_end.append(time.perf_counter() - started)
                        baseline.append(in_couch if in_couch is not None else end_to_end[-1])
                        break
                    await asyncio.sleep(POLL_S)
                while True:  # the case_status document the tablet's next pull brings
                    try:
                        await stack.runtime.couch.get_doc(grid_db, status_doc_id(doc_id))
                        status.append(time.perf_counter() - started)
                        break
                    except CouchNotFound:
                        await asyncio.sleep(POLL_S)
                await push
                await asyncio.sleep(0.3 * rng.uniform(0.5, 1.5))
    finally:
        await tablet.close()
    return end_to_end, baseline, status


async def main() -> None:
    args = parse_args(__doc__ or "")
    count = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        couch = LocalCouch(folder / "couch", in_memory=True)
        couch.start()
        couch.ensure_admin(*COUCH_ADMIN)
        stack = await Stack.start(
            couch_url=couch.url, database_url=f"sqlite:///{folder / 'bench.sqlite3'}", data_dir=folder
        )
        worker = subprocess.Popen(  # noqa: ASYNC220  (our own console script; started once)
            [str(VENV_GRIDPATROL), "worker"],
            env=stack_env(stack),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            end_to_end, baseline, status = await _measure(stack, count, args.seed)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            await stack.stop()
            couch.stop()

    p50, p99 = _percentile(end_to_end, 50), _percentile(end_to_end, 99)
    b50, b99 = _percentile(baseline, 50), _percentile(baseline, 99)
    ratio = p50 / b50
    print(f"machine: {machine()}")
    print(f"{count} pushes from a real PouchDB tablet; worker as 'gridpatrol worker' (longpoll)")
    print("                                  p50 s    p99 s   mean s    max s")
    for name, values in (
        ("push -> case in GET /api/cases", end_to_end),
        ("push -> case status in CouchDB", status),
        ("push -> document in CouchDB", baseline),
    ):
        print(
            f"{name:<32} {_percentile(values, 50):>7.3f} {_percentile(values, 99):>8.3f}"
            f" {statistics.fmean(values):>8.3f} {max(values):>8.3f}"
        )
    print(
        f"ratio p50 end-to-end / p50 sync only: {ratio:.1f}x; target p99 <= {TARGET_P99_S} s: "
        f"{'met' if p99 <= TARGET_P99_S else 'NOT met'}"
    )
    emit(
        "latency",
        {
            "pushes": count,
            "p50_s": round(p50, 3),
            "p99_s": round(p99, 3),
            "mean_s": round(statistics.fmean(end_to_end), 3),
            "status_p50_s": round(_percentile(status, 50), 3),
            "status_p99_s": round(_percentile(status, 99), 3),
            "baseline_p50_s": round(b50, 3),
            "baseline_p99_s": round(b99, 3),
            "worker_follows": "longpoll",
        },
        ratio,
        TARGET_P99_S,
    )


if __name__ == "__main__":
    asyncio.run(main())
