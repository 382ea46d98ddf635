"""Push then pull through the gateway vs directly between PouchDB and the CouchDB-compatible server.

``python -m bench.replication [--quick]``. A tablet (real PouchDB 9, memory adapter) pushes 10,000
findings with 200 photos of ~300 KB (quick: 1,000 and 20), then a fresh tablet pulls them. The same
two steps run, in the same process, straight against pouchdb-server's database (the baseline).
Target: the gateway within 1.3× of direct (push + pull wall time).
"""

import asyncio
import tempfile
import time
from pathlib import Path

from bench._common import emit, machine, parse_args
from server.devcouch import LocalCouch
from tests.support.scenarios import field_docs, real_bytes
from tests.support.stack import COUCH_ADMIN, Stack
from tests.support.tablet import Tablet

FULL, QUICK = (10_000, 200), (1_000, 20)
PHOTO_SIDE_FOR_300KB = 316
TARGET_RATIO = 1.3


async def _push_then_pull(
    url: str, user: str, password: str, docs: list[dict[str, object]]
) -> tuple[float, float]:
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


async def main() -> None:
    args = parse_args(__doc__ or "")
    count, photos = QUICK if args.quick else FULL
    docs = field_docs(count, photos, photo_side=PHOTO_SIDE_FOR_300KB)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        couch = LocalCouch(folder / "couch", in_memory=True)
        couch.start()
        couch.ensure_admin(*COUCH_ADMIN)
        stack = await Stack.start(
            couch_url=couch.url, database_url=f"sqlite:///{folder / 'bench.sqlite3'}", data_dir=folder
        )
        try:
            await stack.runtime.couch.create_db("bench_direct")
            direct_push, direct_pull = await _push_then_pull(f"{couch.url}/bench_direct", *COUCH_ADMIN, docs)
            gateway_push, gateway_pull = await _push_then_pull(
                stack.sync_url(), "vol1", "vol1-password", docs
            )
        finally:
            await stack.stop()
            couch.stop()
    direct, gateway = direct_push + direct_pull, gateway_push + gateway_pull
    ratio = gateway / direct
    data = real_bytes(docs)
    print(f"machine: {machine()}")
    print(f"data: {count} findings, {photos} photos, {data / 1e6:.1f} MB")
    print("              push s    pull s    total s   docs/s")
    for name, push, pull in (("direct", direct_push, direct_pull), ("gateway", gateway_push, gateway_pull)):
        print(f"{name:<12} {push:>7.1f} {pull:>9.1f} {push + pull:>10.1f} {2 * count / (push + pull):>8.0f}")
    print(f"gateway / direct: {ratio:.2f} (target <= {TARGET_RATIO})")
    emit(
        "replication",
        {
            "findings": count,
            "photos": photos,
            "data_mb": round(data / 1e6, 1),
            "direct_push_s": round(direct_push, 1),
            "direct_pull_s": round(direct_pull, 1),
            "gateway_push_s": round(gateway_push, 1),
            "gateway_pull_s": round(gateway_pull, 1),
        },
        ratio,
        TARGET_RATIO,
    )


if __name__ == "__main__":
    asyncio.run(main())
