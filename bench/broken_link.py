"""Pull over a broken link: direct PouchDB ↔ CouchDB-compatible server vs through the gateway.

``python -m bench.broken_link [--quick]``. A volunteer's tablet pulls 2,000 findings with 50 photos
of ~100 KB (quick: 400 and 10) through a TCP proxy that cuts each connection after ~1.3 MB on
average (seeded), retrying a one-shot pull until it completes, as the app does when the link comes
back. Baseline, in the same run: the same pull straight from pouchdb-server's database. Then both
again without cuts on a 1 Mbit/s link with 100 ms latency, for wall time.

Targets: through the gateway, bytes over the link ≤ 2× the real data; uncut wall time within 1.2×
of the direct uncut time.
"""

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import emit, machine, parse_args
from server.devcouch import LocalCouch
from tests.support.proxy import TcpProxy
from tests.support.scenarios import field_docs, real_bytes, sync_until_complete
from tests.support.stack import COUCH_ADMIN, Stack
from tests.support.tablet import Tablet

FULL, QUICK = (2000, 50), (400, 10)
MEAN_BYTES_PER_CUT = 1_300_000
LINK_BYTES_PER_S = 1_000_000 / 8
LINK_DELAY_S = 0.1
TARGET_BYTES_RATIO = 2.0
TARGET_TIME_RATIO = 1.2


@dataclass
class Run:
    attempts: int
    bytes_down: int
    bytes_up: int
    seconds: float


async def _pull(url: str, user: str, password: str, proxy: TcpProxy, expected: int) -> Run:
    tablet = await Tablet.open(proxy.url + url, username=user, password=password)
    try:
        started = time.monotonic()
        attempts = await sync_until_complete(tablet, "pull")
        seconds = time.monotonic() - started
        rows = (await tablet.call("all_docs", options={"startkey": "bl-", "endkey": "bl-~"}))["rows"]
    finally:
        await tablet.close()
    if len(rows) != expected:
        raise SystemExit(f"pull through {url} ended with {len(rows)} of {expected} findings")
    return Run(attempts.count, proxy.stats.bytes_down, proxy.stats.bytes_up, seconds)


async def _measure(
    target_port: int, url: str, user: str, password: str, *, cuts: bool, seed: int, expected: int
) -> Run:
    proxy = TcpProxy(
        "127.0.0.1",
        target_port,
        mean_bytes_per_cut=MEAN_BYTES_PER_CUT if cuts else None,
        bandwidth_bytes_per_s=None if cuts else LINK_BYTES_PER_S,
        delay_s=0.0 if cuts else LINK_DELAY_S,
        seed=seed,
    )
    await proxy.start()
    try:
        return await _pull(url, user, password, proxy, expected)
    finally:
        await proxy.stop()


async def main() -> None:
    args = parse_args(__doc__ or "")
    count, photos = QUICK if args.quick else FULL
    budget = os.environ.get("GRIDPATROL_CHANGES_BYTE_BUDGET", "")  # to try other starting budgets
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        couch = LocalCouch(folder / "couch", in_memory=True)
        couch.start()
        couch.ensure_admin(*COUCH_ADMIN)
        stack = await Stack.start(
            couch_url=couch.url,
            database_url=f"sqlite:///{folder / 'bench.sqlite3'}",
            data_dir=folder,
            extra_env={"GRIDPATROL_CHANGES_BYTE_BUDGET": budget},
        )
        try:
            docs = field_docs(count, photos)
            grid_db = stack.settings.couch.grid_db("ZR01")
            for start in range(0, len(docs), 200):
                await stack.runtime.couch.bulk_docs(grid_db, docs[start : start + 200])
            data = real_bytes(docs)
            direct_url = f"/{grid_db}"
            gateway_url = "/sync/field"
            volunteer = ("vol1", "vol1-password")
            runs = {
                (kind, cuts): await _measure(
                    port, url, *credentials, cuts=cuts, seed=args.seed, expected=count
                )
                for cuts in (True, False)
                for kind, port, url, credentials in (
                    ("direct", couch.port, direct_url, COUCH_ADMIN),
                    ("gateway", stack.app.port, gateway_url, volunteer),
                )
            }
            direct, gateway = runs["direct", True], runs["gateway", True]
            direct_uncut, gateway_uncut = runs["direct", False], runs["gateway", False]
        finally:
            await stack.stop()
            couch.stop()

    direct_ratio = direct.bytes_down / data
    gateway_ratio = gateway.bytes_down / data
    time_ratio = gateway_uncut.seconds / direct_uncut.seconds
    print(f"machine: {machine()}")
    print(f"data: {count} findings, {photos} photos, {data / 1e6:.2f} MB")
    print(f"cuts: every ~{MEAN_BYTES_PER_CUT / 1e6:.1f} MB per connection; slow link: 1 Mbit/s, 100 ms")
    print("                      attempts   MB down    MB up   x data   seconds")
    for name, run in (
        ("direct, cut", direct),
        ("gateway, cut", gateway),
        ("direct, 1 Mbit/s", direct_uncut),
        ("gateway, 1 Mbit/s", gateway_uncut),
    ):
        print(
            f"{name:<20} {run.attempts:>9} {run.bytes_down / 1e6:>9.2f} {run.bytes_up / 1e6:>8.2f}"
            f" {run.bytes_down / data:>8.2f} {run.seconds:>9.1f}"
        )
    print(f"bytes over the link / data, gateway: {gateway_ratio:.2f} (target <= {TARGET_BYTES_RATIO})")
    print(f"uncut wall time, gateway / direct: {time_ratio:.2f} (target <= {TARGET_TIME_RATIO})")
    emit(
        "broken_link",
        {
            "findings": count,
            "photos": photos,
            "data_bytes": data,
            "direct_attempts": direct.attempts,
            "direct_bytes_down": direct.bytes_down,
            "direct_ratio": round(direct_ratio, 2),
            "gateway_attempts": gateway.attempts,
            "gateway_bytes_down": gateway.bytes_down,
            "gateway_ratio": round(gateway_ratio, 2),
            "direct_uncut_s": round(direct_uncut.seconds, 1),
            "gateway_uncut_s": round(gateway_uncut.seconds, 1),
            "uncut_time_ratio": round(time_ratio, 2),
            "time_target": TARGET_TIME_RATIO,
        },
        gateway_ratio,
        TARGET_BYTES_RATIO,
    )


if __name__ == "__main__":
    asyncio.run(main())
