"""Push then pull through the gateway vs directly between PouchDB and the CouchDB-compatible server.

``python -m bench.replication [--quick]``. A tablet (real PouchDB 9, memory adapter) pushes 10,000
findings with 200 photos of ~300 KB (quick: 1,000 and 20), then a fresh tablet pulls them. The same
two steps run, in the same process, straight against pouchdb-server's database (the baseline).
Target: the gateway within 1.3× of direct (push + pull wall time). Six rounds (quick: three), each
on fresh databases, run direct, through a pass-through proxy on the gateway's own stack (uvicorn +
httpx, no logic: the cost of the Python hop alone, see ``bench._passthrough``) and through the
gateway, the three taking turns to go first; the ratio is the median of the rounds' ratios.

``--layout`` pins the processes to CPUs, on every path alike (default ``shared``: none pinned):

- ``own-core`` (also ``--own-core``): the Python hop (proxy or gateway, with this process) on one
  CPU, pouchdb-server and the tablets on the other. The gateway takes no CPU from the CouchDB server
  or the tablet, but the node side then has one CPU on the direct path too.
- ``tablet-apart``: the tablets on one CPU, pouchdb-server and the Python hop on the other. The
  tablet is a device of its own, as in the field, and the gateway shares the server's one CPU with
  CouchDB: its CPU counts in full against a direct path that has a CPU for each side.

These figures complement the default one, never replace it.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench._common import emit, machine, parse_args
from bench._passthrough import pass_through
from server.devcouch import LocalCouch
from tests.support.scenarios import field_docs, real_bytes
from tests.support.stack import COUCH_ADMIN, Stack
from tests.support.tablet import Tablet

FULL, QUICK = (10_000, 200), (1_000, 20)
PHOTO_SIDE_FOR_300KB = 316
TARGET_RATIO = 1.3
ROUNDS, QUICK_ROUNDS = 6, 3
"""Each path goes first in a third of the rounds; the median of the rounds' ratios is reported (on
this shared host one round swings by a third)."""


@dataclass(frozen=True)
class Layout:
    """Which CPUs each side runs on (None: wherever the scheduler puts it)."""

    hop: set[int] | None
    """This process, and with it the proxy's, the gateway's and SQLite's threads."""
    couch: set[int] | None
    tablets: set[int] | None
    text: str


LAYOUTS = {
    "shared": Layout(None, None, None, "every process on every CPU"),
    "own-core": Layout({1}, {0}, {0}, "Python hop on CPU 1, pouchdb-server and tablets on CPU 0"),
    "tablet-apart": Layout({1}, {1}, {0}, "tablets on CPU 0, pouchdb-server and the Python hop on CPU 1"),
}


@contextmanager
def _spawning_on(cpus: set[int] | None) -> Iterator[None]:
    """Processes started inside run on ``cpus`` (None: wherever this thread runs). A forked process
    inherits the CPUs of the thread that forks it, so this thread moves there while it forks."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout", choices=sorted(LAYOUTS), default="shared", help="which CPUs each side runs on"
    )
    parser.add_argument(
        "--own-core",
        dest="layout",
        action="store_const",
        const="own-core",
        help="the same as --layout own-core",
    )


async def _push_then_pull(
    url: str, user: str, password: str, docs: list[dict[str, object]], tablet_cpus: set[int] | None
) -> tuple[float, float]:
    with _spawning_on(tablet_cpus):
        writer = await Tablet.open(url, username=user, password=password)
        reader = await Tablet.open(url, username=user, password=password)
    try:
        for start in range(0, len(docs), 500):
            await writer.call("bulk", docs=docs[start : start + 500])
        started = time.perf_counter()
        pushed = await writer.push()
        push_s = time.perf_counter() - started
        started = time.perf_counter()
        pulled = await reader.pull()
        pull_s = time.perf_counter() - started
        found = len((await reader.call("all_docs", options={"startkey": "bl-", "endkey": "bl-~"}))["rows"])
    finally:
        await writer.close()
        await reader.close()
    if pushed["docs_written"] != len(docs) or found != len(docs) or not pulled["ok"]:
        raise SystemExit(f"{url}: pushed {pushed['docs_written']}, pulled {found} of {len(docs)}")
    return push_s, pull_s


PATHS = ("direct", "proxy", "gateway")


async def _round(
    folder: Path, couch: LocalCouch, docs: list[dict[str, object]], n: int, tablet_cpus: set[int] | None
) -> dict[str, float]:
    """One round: fresh databases on every path (a new prefix for the stack's grid databases).

    The paths take turns going first (round n starts with path n), and each path's databases are
    deleted once it is done: pouchdb-server keeps everything in one node heap, so whichever path
    ran last would otherwise work beside two more copies of the data (63 MB of photos each)."""
    stack = await Stack.start(
        couch_url=couch.url,
        database_url=f"sqlite:///{folder / f'bench-{n}.sqlite3'}",
        data_dir=folder,
        extra_env={"GRIDPATROL_COUCH_DB_PREFIX": f"r{n}_"},
    )
    proxy = pass_through(couch.url)
    proxy.start()
    server = stack.runtime.couch
    timings: dict[str, tuple[float, float]] = {}
    try:
        order = PATHS[n % len(PATHS) :] + PATHS[: n % len(PATHS)]
        for path in order:
            if path == "gateway":
                timings[path] = await _push_then_pull(
                    stack.sync_url(), "vol1", "vol1-password", docs, tablet_cpus
                )
                for db in await server.request("GET", "/_all_dbs"):
                    if str(db).startswith(f"r{n}_"):
                        await server.delete_db(str(db))
                continue
            db = f"bench_{path}_{n}"
            await server.create_db(db)
            url = couch.url if path == "direct" else proxy.url
            timings[path] = await _push_then_pull(f"{url}/{db}", *COUCH_ADMIN, docs, tablet_cpus)
            await server.delete_db(db)
    finally:
        proxy.stop()
        await stack.stop()
    (direct_push, direct_pull), (proxy_push, proxy_pull) = timings["direct"], timings["proxy"]
    gateway_push, gateway_pull = timings["gateway"]
    direct = direct_push + direct_pull
    return {
        "direct_push": direct_push,
        "direct_pull": direct_pull,
        "proxy_push": proxy_push,
        "proxy_pull": proxy_pull,
        "gateway_push": gateway_push,
        "gateway_pull": gateway_pull,
        "proxy_ratio": (proxy_push + proxy_pull) / direct,
        "ratio": (gateway_push + gateway_pull) / direct,
    }


async def main() -> None:
    args = parse_args(__doc__ or "", _options)
    layout = LAYOUTS[args.layout]
    needed = set().union(*(cpus for cpus in (layout.hop, layout.couch, layout.tablets) if cpus))
    if not os.sched_getaffinity(0) >= needed:
        raise SystemExit(f"--layout {args.layout} needs CPUs {sorted(needed)}")
    if layout.hop is not None:
        # threads started from here on (the proxy's, the gateway's, SQLite's) inherit these CPUs
        os.sched_setaffinity(0, layout.hop)
    count, photos = QUICK if args.quick else FULL
    rounds_to_run = QUICK_ROUNDS if args.quick else ROUNDS
    docs = field_docs(count, photos, photo_side=PHOTO_SIDE_FOR_300KB)
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        couch = LocalCouch(folder / "couch", in_memory=True)
        with _spawning_on(layout.couch):
            couch.start()
        couch.ensure_admin(*COUCH_ADMIN)
        try:
            for n in range(rounds_to_run):
                rounds.append(await _round(folder, couch, docs, n, layout.tablets))
        finally:
            couch.stop()
    ratio = statistics.median(r["ratio"] for r in rounds)
    proxy_median = statistics.median(r["proxy_ratio"] for r in rounds)
    median_round = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]  # its times go in the JSON
    data = real_bytes(docs)
    print(f"machine: {machine()}")
    print(f"layout: {args.layout} ({layout.text})")
    print(
        f"data: {count} findings, {photos} photos, {data / 1e6:.1f} MB; {rounds_to_run} rounds,"
        " direct, pass-through proxy and gateway taking turns to go first"
    )
    print("round  first    direct push s  pull s  proxy push s  pull s  ratio  gateway push s  pull s  ratio")
    for n, r in enumerate(rounds):
        print(
            f"{n:>5}  {PATHS[n % len(PATHS)]:<7} {r['direct_push']:>13.1f} {r['direct_pull']:>7.1f}"
            f" {r['proxy_push']:>13.1f} {r['proxy_pull']:>7.1f} {r['proxy_ratio']:>6.2f}"
            f" {r['gateway_push']:>15.1f} {r['gateway_pull']:>7.1f} {r['ratio']:>6.2f}"
        )
    print(f"pass-through proxy / direct, median of the rounds: {proxy_median:.2f} (the Python hop alone)")
    print(f"gateway / direct, median of the rounds: {ratio:.2f} (target <= {TARGET_RATIO})")
    emit(
        "replication",
        {
            "findings": count,
            "photos": photos,
            "data_mb": round(data / 1e6, 1),
            "rounds": rounds_to_run,
            "layout": args.layout,
            "round_ratios": [round(r["ratio"], 2) for r in rounds],
            "proxy_round_ratios": [round(r["proxy_ratio"], 2) for r in rounds],
            "proxy_ratio": round(proxy_median, 2),
            **{f"{k}_s": round(v, 1) for k, v in median_round.items() if not k.endswith("ratio")},
        },
        ratio,
        TARGET_RATIO,
    )


if __name__ == "__main__":
    asyncio.run(main())
