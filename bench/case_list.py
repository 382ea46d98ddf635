"""Case list latency with 100,000 cases, through the real HTTP app, on SQLite and PostgreSQL.

``python -m bench.case_list [--quick]``. 100,000 cases (quick: 10,000) are bulk-inserted straight
into SQL, each with its finding, spread over the six demo grids and their micro-grids, the states of
the five-step loop, the taxonomy's concerns and, for cases past 发现问题, dispatches to the
concern's departments (some overdue). The app runs under uvicorn in a thread; a client sends
``GET /api/cases`` for several filter combinations, as an admin, a grid leader and a department
account, and records p50/p99 per combination. The baseline, in the same run and on the same
database, is the bare indexed SQL of the unfiltered first page (``ORDER BY created_at DESC, id DESC
LIMIT 50``) without the API. PostgreSQL is used when reachable at 127.0.0.1:5432 (user postgres).
Target: every combination's p99 under 200 ms on one core.
"""

import asyncio
import gc
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import create_engine, insert, text

from bench._common import emit, machine, parse_args
from field_schema import load_taxonomy
from geo import load_areas
from geo.demo_district import DEMO_GRID_FILE
from server.db import make_engine, make_session_maker
from server.db.migrate import upgrade_to_head
from server.db.models import (
    Case,
    CaseDispatch,
    CaseSearch,
    CaseState,
    Finding,
    Role,
    UserCreate,
    search_content,
    search_scope,
)
from server.provision import load_grids, upsert_user
from server.settings import Settings
from tests.support.stack import POSTGRES_ADMIN_URL, AppServer, create_pg_database, drop_pg_database

FULL, QUICK = 100_000, 10_000
REQUESTS_FULL, REQUESTS_QUICK = 200, 40
TARGET_P99_MS = 200.0
PAGE = 50
STATES = [  # rough shares of a subdistrict's book of cases
    (CaseState.CLOSED, 55),
    (CaseState.PROBLEM_FOUND, 10),
    (CaseState.COORDINATING, 12),
    (CaseState.RESOLVING, 10),
    (CaseState.FOLLOW_UP, 6),
    (CaseState.PARKED, 3),
    (CaseState.VISIT_SURVEY, 2),
    (CaseState.REOPENED, 2),
]
PLANS = [  # the shapes of the list's queries whose plans are printed
    ("leader scope", "(grid_code IN ('ZR01') OR (grid_code IS NULL AND intake_grid IN ('ZR01')))"),
    ("leader + state", "grid_code IN ('ZR01') AND state = 'coordinating'"),
    ("text", "EXISTS (SELECT 1 FROM case_search s WHERE s.case_id = cases.id AND s.content LIKE '%飞线%')"),
    ("bbox", "lon BETWEEN 121.3990 AND 121.4020 AND lat BETWEEN 31.2560 AND 31.2590"),
]
USERS = {
    "admin": ("bench-admin-pw", Role.ADMIN, [], None),
    "leader": ("bench-leader-pw", Role.GRID_LEADER, ["ZR01"], None),
    "police": ("bench-police-pw", Role.DEPARTMENT, [], "police"),
}
UNFILTERED = "admin, first page"
COMBOS: list[tuple[str, str, dict[str, str]]] = [
    (UNFILTERED, "admin", {}),
    ("leader ZR01, first page", "leader", {}),
    ("leader, state=coordinating", "leader", {"state": "coordinating"}),
    ("leader, micro-grid + concern", "leader", {"micro_grid": "ZR01-02", "concern": "04-01"}),
    ("admin, department=fire + overdue", "admin", {"department": "fire", "overdue": "true"}),
    ("admin, bbox 300 m", "admin", {"bbox": "121.3990,31.2560,121.4020,31.2590"}),
    ("leader, text 飞线", "leader", {"q": "飞线"}),
    ("admin, text 飞线", "admin", {"q": "飞线"}),
    ("department police, first page", "police", {}),
]


Rows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def _rows(count: int, seed: int) -> Rows:
    rng = random.Random(seed)
    taxonomy = load_taxonomy()
    concerns = taxonomy.active_concerns()
    micro = [(a.code, a.parent, a.geometry.bounds) for a in load_areas(DEMO_GRID_FILE) if a.parent]
    states = [s for s, _ in STATES]
    weights = [w for _, w in STATES]
    now = datetime.now(UTC)
    cases: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    dispatches: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    for k in range(count):
        micro_code, grid, (west, south, east, north) = rng.choice(micro)
        lon, lat = rng.uniform(west, east), rng.uniform(south, north)
        concern = rng.choice(concerns)
        state = rng.choices(states, weights)[0]
        created = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        case_id = str(uuid.UUID(int=rng.getrandbits(128)))
        note = f"{concern.name_zh}，{rng.choice(['楼道', '车棚', '沿街商铺', '地下室', '小区门口'])}，编号{k}"
        cases.append(
            {
                "id": case_id,
                "case_no": f"{grid}-{created:%Y%m%d}-{k:06d}",
                "grid_code": grid,
                "micro_grid_code": micro_code,
                "intake_grid": grid,
                "assignment": "assigned",
                "assignment_candidates": [],
                "concern_code": concern.code,
                "severity": str(concern.default_severity),
                "state": state,
                "lat": lat,
                "lon": lon,
                "summary": note,
                "created_at": created,
                "updated_at": created,
                "version": 0,
            }
        )
        findings.append(
            {
                "doc_id": f"hazard-bench-{k:06d}",
                "source_db": f"gp_grid_{grid.lower()}",
                "rev": "1-bench",
                "case_id": case_id,
                "author": "vol1",
                "device_id": "tablet-1",
                "schema_version": 2,
                "concern_code": concern.code,
                "severity": str(concern.default_severity),
                "note": note,
                "lat": lat,
                "lon": lon,
                "reported_lat": lat,
                "reported_lon": lon,
                "reported_datum": "wgs84",
                "accuracy_m": 8.0,
                "observed_at": created,
                "received_at": created,
                "photos": [],
                "deleted": False,
                "status_version": 1,
                "status_published_version": 1,
            }
        )
        searches.append(
            {  # as the merge engine writes it with the case
                "scope_grid": search_scope(grid, grid),
                "case_id": case_id,
                "content": search_content(cases[-1]["case_no"], note, [note]),
            }
        )
        cases[-1]["open_deadline_at"] = None
        if state in (CaseState.PROBLEM_FOUND, CaseState.VISIT_SURVEY):
            continue
        for code in concern.departments[: rng.randint(1, 2)]:
            sent = created + timedelta(hours=rng.uniform(1, 48))
            deadline = sent + timedelta(days=concern.deadline_working_days * 1.4)
            reported = state is CaseState.CLOSED or rng.random() < 0.6
            dispatches.append(
                {
                    "case_id": case_id,
                    "department_code": code,
                    "state": "reported" if reported else "acknowledged",
                    "instructions": "",
                    "working_days": concern.deadline_working_days,
                    "dispatched_by": "leader",
                    "dispatched_at": sent,
                    "deadline_at": deadline,
                    "deadline_provisional": False,
                    "reported_at": min(deadline, now) if reported else None,
                    "report": "已处理" if reported else "",
                }
            )
            if not reported:
                earliest = cases[-1]["open_deadline_at"]
                cases[-1]["open_deadline_at"] = deadline if earliest is None else min(earliest, deadline)
    return cases, findings, dispatches, searches


def _bulk_insert(settings: Settings, rows: tuple[list[dict[str, Any]], ...]) -> float:
    engine = create_engine(settings.database.sync_url)
    start = time.perf_counter()
    with engine.begin() as conn:
        for table, batch in zip((Case, Finding, CaseDispatch, CaseSearch), rows, strict=True):
            for i in range(0, len(batch), 5000):
                conn.execute(insert(table), batch[i : i + 5000])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - start


async def _prepare(settings: Settings) -> None:
    upgrade_to_head(settings)
    engine = make_engine(settings.database)
    sessions = make_session_maker(engine)
    await load_grids(sessions, load_areas(DEMO_GRID_FILE))
    for name, (password, role, grids, department) in USERS.items():
        await upsert_user(
            sessions,
            UserCreate(username=name, password=password, role=role, grids=grids, department=department),
        )
    await engine.dispose()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def _time(requests: int, call: Callable[[], Any]) -> tuple[float, float]:
    for _ in range(3):
        call()  # warm caches and the credential cache
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


def _getter(client: httpx.Client, params: dict[str, str], auth: tuple[str, str]) -> Callable[[], Any]:
    def call() -> httpx.Response:
        response = client.get("/api/cases", params=params, auth=auth)
        response.raise_for_status()
        return response

    return call


def _baseline(settings: Settings, requests: int) -> tuple[float, float]:
    engine = create_engine(settings.database.sync_url)
    query = text("SELECT * FROM cases ORDER BY created_at DESC, id DESC LIMIT :n").bindparams(n=PAGE)
    with engine.connect() as conn:
        result = _time(requests, lambda: conn.execute(query).all())
        explain = "EXPLAIN QUERY PLAN" if settings.database.is_sqlite else "EXPLAIN"
        for label, where in PLANS:
            sql = f"{explain} SELECT * FROM cases WHERE {where} ORDER BY created_at DESC, id DESC LIMIT 51"
            lines = [str(row[-1]).strip() for row in conn.execute(text(sql)).all()]
            print(f"  plan, {label}: " + " | ".join(lines[:4]))
    engine.dispose()
    return result


def _run_backend(name: str, url: str, data_dir: Path, rows: Any, requests: int) -> dict[str, Any]:
    settings = Settings.from_env(
        {
            "GRIDPATROL_ENV": "test",
            "GRIDPATROL_DATA_DIR": str(data_dir),
            "GRIDPATROL_DATABASE_URL": url,
            "GRIDPATROL_COUCH_URL": "http://127.0.0.1:9",  # the list never talks to CouchDB
            "GRIDPATROL_SECRET_KEY": "bench-secret-key-" + "x" * 32,
        }
    )
    asyncio.run(_prepare(settings))
    load_s = _bulk_insert(settings, rows)
    print(f"{name}: {len(rows[0]):,} cases, {len(rows[2]):,} dispatches inserted in {load_s:.1f} s")
    base_p50, base_p99 = _baseline(settings, requests)
    print(f"  baseline bare SQL first page: p50 {base_p50:.2f} ms, p99 {base_p99:.2f} ms")
    app = AppServer(settings)
    app.start()
    figures: dict[str, Any] = {"baseline_p50_ms": round(base_p50, 2), "baseline_p99_ms": round(base_p99, 2)}
    try:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            for label, user, params in COMBOS:
                auth = (user, USERS[user][0])
                first = client.get("/api/cases", params={**params, "limit": PAGE}, auth=auth)
                first.raise_for_status()
                body = first.json()
                p50, p99 = _time(requests, _getter(client, {**params, "limit": str(PAGE)}, auth))
                print(f"  {label:36} {body['count']:>7,} match  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
                figures[label] = {"matches": body["count"], "p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}
            admin = ("admin", USERS["admin"][0])
            cursor = ""
            for _ in range(19):  # to the 20th page
                params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
                cursor = client.get("/api/cases", params=params, auth=admin).json()["next_cursor"]
            p50, p99 = _time(requests, _getter(client, {"limit": str(PAGE), "cursor": cursor}, admin))
            print(f"  {'admin, 20th page (cursor)':36} {'':>7}        p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
            figures["admin, 20th page (cursor)"] = {"p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}
    finally:
        app.stop()
    return figures


def _postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def main() -> None:
    args = parse_args(__doc__ or "")
    count = QUICK if args.quick else FULL
    requests = REQUESTS_QUICK if args.quick else REQUESTS_FULL
    print(f"machine: {machine()}")
    rows = _rows(count, args.seed)
    gc.collect()
    gc.freeze()  # the generated rows share the heap with the app: keep them out of its collections
    figures: dict[str, Any] = {"cases": count, "requests_per_combination": requests}
    with tempfile.TemporaryDirectory() as tmp:
        figures["sqlite"] = _run_backend(
            "sqlite", f"sqlite:///{tmp}/bench.sqlite3", Path(tmp), rows, requests
        )
        if _postgres_reachable():
            url = create_pg_database()
            try:
                figures["postgresql"] = _run_backend("postgresql", url, Path(tmp), rows, requests)
            finally:
                drop_pg_database(url)
        else:
            print("postgresql: not reachable at 127.0.0.1:5432, skipped")
    backends = [figures[b] for b in ("sqlite", "postgresql") if b in figures]
    worst = max(e["p99_ms"] for f in backends for e in f.values() if isinstance(e, dict))
    unfiltered = max(f[UNFILTERED]["p99_ms"] for f in backends)
    bare = max(f["baseline_p99_ms"] for f in backends)
    ratio = worst / unfiltered
    print(
        f"worst p99 through the API {worst:.1f} ms; unfiltered first page p99 {unfiltered:.1f} ms "
        f"(ratio {ratio:.2f}); bare SQL first page p99 {bare:.2f} ms"
    )
    print(
        f"target p99 <= {TARGET_P99_MS:.0f} ms for every combination: "
        f"{'met' if worst <= TARGET_P99_MS else 'NOT met'}"
    )
    emit("case_list", figures, ratio, TARGET_P99_MS)


if __name__ == "__main__":
    main()
