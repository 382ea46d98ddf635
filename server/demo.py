"""``gridpatrol demo``: the whole system on one machine with demo data, stopped by Ctrl-C.

Starts pouchdb-server (data under .data/demo/couch), prepares SQLite, grids, users and demo
documents of every type (findings, visits, installations, patrols, follow-ups, alerts), then runs
the gateway and the worker as child processes and prints where to go.
Development only: the demo accounts' passwords are printed and written in the README.
"""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from field_schema import load_taxonomy
from field_schema.demo_data import demo_documents
from geo import load_areas
from server.db import make_engine, make_session_maker
from server.db.models import Role, UserCreate
from server.devcouch import LocalCouch
from server.provision import grid_codes_of, setup, upsert_user
from server.runtime import make_couch_client
from server.settings import Settings

__all__ = ["DEMO_USERS", "demo_counts", "run_demo"]

DEMO_GRID_FILE = Path(__file__).resolve().parents[1] / "geo" / "data" / "zhenru_demo.geojson"
# Development-only accounts, also listed in the README.
DEMO_USERS: tuple[UserCreate, ...] = (
    UserCreate(
        username="volunteer1",
        password="patrol-demo-1",
        role=Role.VOLUNTEER,
        grids=["ZR01"],
        display_name="志愿者 王芳",
    ),
    UserCreate(
        username="leader1",
        password="leader-demo-1",
        role=Role.GRID_LEADER,
        grids=["ZR01"],
        display_name="网格长 李强",
    ),
    UserCreate(
        username="coordinator1",
        password="coord-demo-1",
        role=Role.COORDINATOR,
        grids=["ZR01", "ZR02", "ZR03", "ZR04", "ZR05", "ZR06"],
        display_name="专项协调员 陈静",
    ),
    UserCreate(username="admin", password="admin-demo-1", role=Role.ADMIN, grids=[], display_name="管理员"),
    UserCreate(
        username="police1",
        password="police-demo-1",
        role=Role.DEPARTMENT,
        department="police",
        display_name="真如派出所 值班民警",
    ),
)


def _dev_secrets(folder: Path) -> dict[str, str]:
    """Random secrets for this checkout's demo, kept outside the repository (in .data)."""
    path = folder / "dev-secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    folder.mkdir(parents=True, exist_ok=True)
    created = {"couch_password": secrets.token_urlsafe(24), "secret_key": secrets.token_urlsafe(48)}
    path.write_text(json.dumps(created))
    path.chmod(0o600)
    return created


def demo_counts(findings: int) -> dict[str, int]:
    """The mix seeded next to ``findings`` hazard findings (only findings become cases for now)."""
    return {
        "hazard": findings,
        "visit": findings // 2,
        "installation": findings // 4,
        "patrol": max(1, findings // 10) if findings else 0,
        "follow_up": findings // 6,
        "missing_person": 1 if findings else 0,
    }


async def _seed(settings: Settings, findings: int) -> int:
    engine = make_engine(settings.database)
    try:
        sessions = make_session_maker(engine)
        for user in DEMO_USERS:
            await upsert_user(sessions, user)
    finally:
        await engine.dispose()
    areas = load_areas(DEMO_GRID_FILE)
    authors: dict[str, Sequence[str]] = {code: [] for code in grid_codes_of(areas)}
    authors["ZR01"] = ["volunteer1"]
    docs = demo_documents(areas, load_taxonomy(), authors, counts=demo_counts(findings), seed=7)
    by_db: dict[str, list[dict[str, object]]] = {}
    for item in docs:
        by_db.setdefault(settings.couch.grid_db(item.grid), []).append(item.doc)
    created = 0
    async with make_couch_client(settings) as couch:
        for db, batch in by_db.items():
            answers = await couch.bulk_docs(db, batch)
            created += sum(1 for a in answers if "error" not in a)
    return created


def _wait_http(url: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return True
        except httpx.HTTPError:
            time.sleep(0.3)
    return False


def run_demo(*, port: int, couch_port: int, findings: int) -> int:
    root = Path(os.environ.get("GRIDPATROL_DATA_DIR", ".data")).resolve() / "demo"
    secrets_ = _dev_secrets(root)
    couch = LocalCouch(root / "couch", port=couch_port)
    env = {
        **os.environ,
        "GRIDPATROL_ENV": "development",
        "GRIDPATROL_DATA_DIR": str(root),
        "GRIDPATROL_DATABASE_URL": os.environ.get(
            "GRIDPATROL_DATABASE_URL", f"sqlite:///{root / 'gridpatrol.sqlite3'}"
        ),
        "GRIDPATROL_COUCH_URL": couch.url,
        "GRIDPATROL_COUCH_USER": "gridpatrol",
        "GRIDPATROL_COUCH_PASSWORD": secrets_["couch_password"],
        "GRIDPATROL_SECRET_KEY": secrets_["secret_key"],
    }
    print(f"starting pouchdb-server on {couch.url} (data in {couch.data_dir}) ...", flush=True)
    couch.start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        couch.ensure_admin("gridpatrol", secrets_["couch_password"])
        settings = Settings.from_env(env)
        report = asyncio.run(setup(settings, DEMO_GRID_FILE))
        seeded = asyncio.run(_seed(settings, findings))
        print(
            f"{report.grids} grids, {report.micro_grids} micro-grids; {seeded} new demo documents "
            f"({findings} findings, plus visits, installations, patrols, follow-ups and an alert)",
            flush=True,
        )
        executable = [sys.executable, "-m", "server"]
        children.append(subprocess.Popen([*executable, "serve", "--port", str(port)], env=env))  # noqa: S603
        children.append(subprocess.Popen([*executable, "worker"], env=env))  # noqa: S603
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/health")
        _print_welcome(base)
        stop = {"now": False}

        def _stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop["now"]:
            if any(child.poll() is not None for child in children):
                print("a child process exited; stopping the demo", flush=True)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        couch.stop()
        print("demo stopped", flush=True)


def _print_welcome(base: str) -> None:
    lines = [
        "",
        "gridpatrol demo is running (Ctrl-C stops everything)",
        f"  sync gateway (PouchDB URL)  {base}/sync/field",
        f"  case API                    {base}/api/cases",
        f"  document schemas (public)   {base}/api/schemas",
        f"  taxonomy (admin)            {base}/api/taxonomy",
        f"  OpenAPI                     {base}/schema  ({base}/schema/openapi.json)",
        f"  health                      {base}/health",
        "  demo accounts (development only):",
    ]
    lines += [
        f"    {u.role:<12} {u.username:<13} {u.password:<15} "
        + (f"department={u.department}" if u.department else f"grids={','.join(u.grids) or 'all'}")
        for u in DEMO_USERS
    ]
    print("\n".join(lines), flush=True)
