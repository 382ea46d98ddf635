"""Merge throughput: findings read from CouchDB's ``_changes`` merged into grid case records.

``python -m bench.merge [--quick] [--backend sqlite|postgresql|both]``. 100,000 demo hazard findings
(quick: 10,000), spread over the six demo grids' micro-grids with every concern, are written to
the grid databases of a local pouchdb-server. Their ``_changes`` pages (``include_docs``,
``conflicts=true``, ``style=all_docs``, the worker's page size) are read first and timed on their
own; the **merge step** is then timed over those pages exactly as the worker applies them: one SQL
transaction per page holding ``apply_page`` (validation, upgrade, datum conversion, grid
assignment, join search, case numbers, bulk inserts of cases / findings / links / events /
revisions) and the compare-and-set checkpoint move. CouchDB read time is *not* in the merge
figure; the "read + merge" figure adds it.

Baseline, in the same run and on the same backend: a plain bulk insert of the same finding rows
(and their revision rows), one transaction per page, with no validation, no grid assignment and no
joining — the floor any merge must stand on. Ratio: merge throughput / baseline throughput.

Both backends must decide the same: a fingerprint of the grouping (each finding with its case's
first finding and its join's matched finding) is printed per backend and must agree (the run
fails otherwise); it also lets two versions of the engine be compared on the same seed.

Targets: ≥ 5,000 findings/s on SQLite, ≥ 2,000/s on PostgreSQL.
"""

import argparse
import asyncio
import gc
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench._common import emit, machine
from field_schema import load_taxonomy, upgrade
from field_schema.demo_data import demo_documents
from geo import load_areas
from server.db.models import Case, CaseLink, FeedCheckpoint, Finding, FindingRevision
from server.devcouch import LocalCouch
from server.provision import setup
from server.runtime import Runtime
from server.settings import Settings
from sync._rows import finding_fields as _finding_fields
from sync.merge import JoinCache, apply_page
from tests.support.stack import (
    COUCH_ADMIN,
    GRID_FILE,
    POSTGRES_ADMIN_URL,
    create_pg_database,
    drop_pg_database,
)

FULL, QUICK = 100_000, 10_000
PAGE = 1000
TARGETS = {"sqlite": 5_000, "postgresql": 2_000}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="10,000 findings; finishes in well under a minute"
    )
    parser.add_argument("--seed", type=int, default=20261125, help="seed of the generated data")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    return parser.parse_args()


def _settings(couch_url: str, database_url: str, data_dir: Path) -> Settings:
    return Settings.from_env(
        {
            "GRIDPATROL_ENV": "test",
            "GRIDPATROL_DATA_DIR": str(data_dir),
            "GRIDPATROL_DATABASE_URL": database_url,
            "GRIDPATROL_COUCH_URL": couch_url,
            "GRIDPATROL_COUCH_USER": COUCH_ADMIN[0],
            "GRIDPATROL_COUCH_PASSWORD": COUCH_ADMIN[1],
            "GRIDPATROL_COUCH_DB_PREFIX": "bench_",
            "GRIDPATROL_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "GRIDPATROL_WORKER_BATCH": str(PAGE),
        }
    )


async def _load(runtime: Runtime, count: int, seed: int) -> int:
    """Write ``count`` demo hazards into the grid databases; returns how many were written."""
    areas = load_areas(GRID_FILE)
    authors = {a.code: [f"vol-{a.code.lower()}-{i}" for i in range(8)] for a in areas if a.parent is None}
    by_db: dict[str, list[dict[str, Any]]] = {}
    for item in demo_documents(
        areas, runtime.taxonomy, authors, counts={"hazard": count}, seed=seed, photo_every=0
    ):
        by_db.setdefault(runtime.settings.couch.grid_db(item.grid), []).append(item.doc)
    written = 0
    for db, docs in by_db.items():
        for start in range(0, len(docs), 2000):
            answers = await runtime.couch.bulk_docs(db, docs[start : start + 2000])
            written += sum(1 for a in answers if "rev" in a)
    return written


async def _read_pages(runtime: Runtime) -> list[tuple[str, str, list[dict[str, Any]], str]]:
    """Every page of every grid feed: (db, grid, rows, last_seq)."""
    pages = []
    for code in runtime.grids.grid_codes:
        db = runtime.settings.couch.grid_db(code)
        since: str | int = 0
        while True:
            page = await runtime.couch.changes(
                db,
                {"since": since, "limit": PAGE, "include_docs": True, "conflicts": True, "style": "all_docs"},
            )
            rows = page.get("results", [])
            if not rows:
                break
            since = str(page["last_seq"])
            pages.append((db, code, rows, since))
    return pages


async def _merge(runtime: Runtime, pages: list[tuple[str, str, list[dict[str, Any]], str]]) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    previous: dict[str, str] = {}
    join_cache = JoinCache()  # as the worker keeps it between pages
    analyze_at = 1
    for number, (db, grid, rows, last_seq) in enumerate(pages, start=1):
        if runtime.engine.dialect.name == "postgresql" and number == analyze_at:
            # What autovacuum's analyze does as tables grow (it is off on some test hosts, and its
            # one-minute nap is longer than this run): planner statistics for the new rows.
            analyze_at *= 2
            async with runtime.engine.connect() as connection:
                await connection.execute(text("ANALYZE findings, finding_revisions, cases, case_links"))
                await connection.commit()
        async with runtime.sessions() as session, session.begin():
            for outcome in await apply_page(
                session,
                source_db=db,
                source_grid=grid,
                rows=rows,
                grid_index=runtime.grids.index,
                taxonomy=runtime.taxonomy,
                timezone=runtime.settings.timezone,
                join_cache=join_cache,
            ):
                outcomes[outcome.action] = outcomes.get(outcome.action, 0) + 1
            if db in previous:
                await session.exec(
                    update(FeedCheckpoint)
                    .where(col(FeedCheckpoint.source_db) == db, col(FeedCheckpoint.seq) == previous[db])
                    .values(seq=last_seq)
                )
            else:
                session.add(FeedCheckpoint(source_db=db, seq=last_seq))
        previous[db] = last_seq
    return outcomes


async def _grouping(session: AsyncSession) -> str:
    """A fingerprint of what the merge decided, independent of generated ids: each finding with
    the first finding of its case and the finding its join matched (sha256, 16 hex digits)."""
    rows = (await session.exec(select(Finding.doc_id, Finding.case_id))).all()
    first: dict[str, str] = {}
    for doc_id, case_id in rows:
        key = str(case_id)
        first[key] = min(first.get(key, doc_id), doc_id)
    matched = dict((await session.exec(select(CaseLink.finding_id, CaseLink.matched_finding))).all())
    lines = sorted(f"{d} {first[str(c)]} {matched.get(d) or '-'}" for d, c in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


async def _baseline(
    runtime: Runtime, pages: list[tuple[str, str, list[dict[str, Any]], str]]
) -> tuple[int, float]:
    """Plain bulk inserts of the same finding rows, no merging: rows are prepared outside the timing."""
    prepared = []
    for db, _, rows, _ in pages:
        findings, revisions = [], []
        for row in rows:
            doc = row["doc"]
            fields = _finding_fields(upgrade(doc), runtime.taxonomy)
            findings.append({"doc_id": doc["_id"], "source_db": db, "rev": doc["_rev"], **fields})
            revisions.append(
                {"doc_id": doc["_id"], "rev": doc["_rev"], "source_db": db, "seq": str(row["seq"])}
            )
        prepared.append((findings, revisions))
    started = time.perf_counter()
    for findings, revisions in prepared:
        async with runtime.sessions() as session, session.begin():
            await session.exec(insert(Finding), params=findings)
            await session.exec(insert(FindingRevision), params=revisions)
    seconds = time.perf_counter() - started
    return sum(len(f) for f, _ in prepared), seconds


async def _fresh_runtime(couch_url: str, database_url: str, folder: Path) -> Runtime:
    settings = _settings(couch_url, database_url, folder)
    await setup(settings, GRID_FILE, load_taxonomy())
    runtime = await Runtime.open(settings)
    await runtime.refresh()
    return runtime


async def _backend(
    name: str, couch_url: str, folder: Path, pages: list[tuple[str, str, list[dict[str, Any]], str]]
) -> dict[str, Any]:
    urls = []
    for role in ("merge", "baseline"):
        if name == "sqlite":
            urls.append(f"sqlite:///{folder / f'{role}.sqlite3'}")
        else:
            urls.append(create_pg_database())
    try:
        runtime = await _fresh_runtime(couch_url, urls[0], folder)
        try:
            started = time.perf_counter()
            outcomes = await _merge(runtime, pages)
            seconds = time.perf_counter() - started
            async with runtime.sessions() as session:
                cases = (await session.exec(select(func.count()).select_from(Case))).one()
                findings = (await session.exec(select(func.count()).select_from(Finding))).one()
                grouping = await _grouping(session)
        finally:
            await runtime.close()
        runtime = await _fresh_runtime(couch_url, urls[1], folder)
        try:
            rows, baseline_seconds = await _baseline(runtime, pages)
        finally:
            await runtime.close()
    finally:
        if name == "postgresql":
            for url in urls:
                drop_pg_database(url)
    merged = outcomes.get("created", 0) + outcomes.get("joined", 0)
    return {
        "findings": findings,
        "cases": cases,
        "joined": outcomes.get("joined", 0),
        "merge_s": round(seconds, 3),
        "merge_per_s": round(merged / seconds),
        "baseline_s": round(baseline_seconds, 3),
        "baseline_per_s": round(rows / baseline_seconds),
        "grouping": grouping,
    }


def _postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


async def main() -> int:
    args = parse()
    count = QUICK if args.quick else FULL
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not _postgres_available():
        print("PostgreSQL not reachable at 127.0.0.1:5432: skipped")
        backends.remove("postgresql")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        couch = LocalCouch(folder / "couch", in_memory=True)
        couch.start()
        try:
            couch.ensure_admin(*COUCH_ADMIN)
            loader = await _fresh_runtime(couch.url, f"sqlite:///{folder / 'load.sqlite3'}", folder)
            try:
                started = time.perf_counter()
                written = await _load(loader, count, args.seed)
                load_seconds = time.perf_counter() - started
                started = time.perf_counter()
                pages = await _read_pages(loader)
                read_seconds = time.perf_counter() - started
            finally:
                await loader.close()
            read = sum(len(rows) for _, _, rows, _ in pages)
            # A worker holds one page at a time; this run holds every page read above (a few million
            # objects). Frozen, they are not traversed by each full collection during the merge.
            gc.collect()
            gc.freeze()
            for name in backends:
                results[name] = await _backend(name, couch.url, folder, pages)
                print(f"{name}: {results[name]}", flush=True)
        finally:
            couch.stop()

    print(f"machine: {machine()}")
    print(f"{written:,} findings written to pouchdb-server in {load_seconds:.1f} s")
    print(
        f"_changes read: {read:,} rows in {len(pages)} pages of {PAGE} in {read_seconds:.2f} s"
        f" = {read / read_seconds:,.0f}/s"
    )
    print("backend      findings   cases  joined   merge s  merge/s  read+merge/s  baseline/s  ratio  target")
    figures: dict[str, Any] = {"findings": written, "page": PAGE, "couch_read_s": round(read_seconds, 3)}
    ok = True
    for name, r in results.items():
        ratio = r["merge_per_s"] / r["baseline_per_s"]
        combined = r["findings"] / (r["merge_s"] + read_seconds)
        met = r["merge_per_s"] >= TARGETS[name]
        ok = ok and met and r["findings"] == written
        print(
            f"{name:<11} {r['findings']:>9,} {r['cases']:>7,} {r['joined']:>7,} {r['merge_s']:>9.2f}"
            f" {r['merge_per_s']:>8,} {combined:>13,.0f} {r['baseline_per_s']:>11,} {ratio:>6.2f}"
            f"  {TARGETS[name]:,} {'met' if met else 'NOT met'}"
        )
        figures.update({f"{name}_{k}": v for k, v in r.items()})
        figures[f"{name}_read_and_merge_per_s"] = round(combined)
        figures[f"{name}_ratio"] = round(ratio, 3)
    groupings = {r["grouping"] for r in results.values()}
    print(
        f"grouping fingerprint: {', '.join(sorted(groupings))}"
        + (" (same on both)" if len(results) > 1 else "")
    )
    ok = ok and len(groupings) == 1
    first = next(iter(results.values()), None)
    first_name = next(iter(results), "sqlite")
    emit(
        "merge",
        figures,
        (first["merge_per_s"] / first["baseline_per_s"]) if first else 0.0,
        TARGETS[first_name],
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
