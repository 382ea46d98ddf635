"""A whole gridpatrol stack for tests and benchmarks: SQL (SQLite or PostgreSQL), pouchdb-server,
the app served by uvicorn in a thread, and a worker Runtime for the test's own event loop."""

import asyncio
import dataclasses
import os
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from field_schema import load_taxonomy
from server.app import create_app
from server.db.models import Role, UserCreate
from server.devcouch import free_port
from server.provision import setup, upsert_user
from server.runtime import Runtime
from server.settings import Settings
from sync.worker import ChangeFollower
from tests.support.docs import ZR01_POINT
from tests.support.served import ThreadedServer

__all__ = [
    "POSTGRES_ADMIN_URL",
    "VENV_GRIDPATROL",
    "AppServer",
    "Stack",
    "TestUser",
    "app_without_couchdb",
    "create_pg_database",
    "drop_pg_database",
    "stack_env",
]

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
GRID_FILE = Path(__file__).resolve().parents[2] / "geo" / "data" / "zhenru_demo.geojson"
COUCH_ADMIN = ("gridpatrol", "test-couch-admin-pw")
VENV_GRIDPATROL = Path(sys.executable).with_name("gridpatrol")
"""The command line, for tests that run a worker as its own process (to kill it)."""


@dataclass(frozen=True)
class TestUser:
    username: str
    password: str
    role: Role
    grids: tuple[str, ...] = ()


DEFAULT_USERS: tuple[TestUser, ...] = (
    TestUser("vol1", "vol1-password", Role.VOLUNTEER, ("ZR01",)),
    TestUser("vol1b", "vol1b-password", Role.VOLUNTEER, ("ZR01",)),
    TestUser("vol2", "vol2-password", Role.VOLUNTEER, ("ZR02",)),
    TestUser("lead1", "lead1-password", Role.GRID_LEADER, ("ZR01",)),
    TestUser("lead2", "lead2-password", Role.GRID_LEADER, ("ZR02",)),
    TestUser("coord", "coord-password", Role.COORDINATOR, ("ZR01", "ZR02", "ZR03", "ZR04", "ZR05", "ZR06")),
    TestUser("root", "root-password", Role.ADMIN, ()),
)


def create_pg_database() -> str:
    name = f"gp_test_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class AppServer(ThreadedServer):
    """The Litestar app under uvicorn in a background thread, on a free port."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        super().__init__(create_app(settings), port)


@asynccontextmanager
async def app_without_couchdb(settings: Settings) -> AsyncIterator[AppServer]:
    """The app of ``settings`` with a CouchDB address nothing listens on: a CouchDB that is away."""
    away = dataclasses.replace(
        settings, couch=dataclasses.replace(settings.couch, url=f"http://127.0.0.1:{free_port()}")
    )
    app = AppServer(away)
    await asyncio.to_thread(app.start)
    try:
        yield app
    finally:
        await asyncio.to_thread(app.stop)


@dataclass
class Stack:
    settings: Settings
    app: AppServer
    runtime: Runtime
    users: dict[str, TestUser] = field(default_factory=dict)

    @classmethod
    async def start(
        cls,
        *,
        couch_url: str,
        database_url: str,
        data_dir: Path,
        users: Sequence[TestUser] = DEFAULT_USERS,
        extra_env: dict[str, str] | None = None,
    ) -> "Stack":
        env = {
            "GRIDPATROL_ENV": "test",
            "GRIDPATROL_DATA_DIR": str(data_dir),
            "GRIDPATROL_DATABASE_URL": database_url,
            "GRIDPATROL_COUCH_URL": couch_url,
            "GRIDPATROL_COUCH_USER": COUCH_ADMIN[0],
            "GRIDPATROL_COUCH_PASSWORD": COUCH_ADMIN[1],
            "GRIDPATROL_COUCH_DB_PREFIX": f"t{secrets.token_hex(3)}_",
            "GRIDPATROL_SECRET_KEY": secrets.token_urlsafe(48),
            "GRIDPATROL_WORKER_POLL": "0.05",
            **(extra_env or {}),
        }
        settings = Settings.from_env(env)
        await setup(settings, GRID_FILE, load_taxonomy())
        runtime = await Runtime.open(settings)
        for user in users:
            await upsert_user(
                runtime.sessions,
                UserCreate(
                    username=user.username, password=user.password, role=user.role, grids=list(user.grids)
                ),
            )
        app = AppServer(settings)
        await asyncio.to_thread(app.start)
        return cls(settings=settings, app=app, runtime=runtime, users={u.username: u for u in users})

    def sync_url(self) -> str:
        return f"{self.app.url}/sync/{self.settings.gateway.virtual_db}"

    def auth(self, username: str) -> tuple[str, str]:
        return username, self.users[username].password

    def http(self, username: str | None = None) -> httpx.AsyncClient:
        auth = self.auth(username) if username else None
        return httpx.AsyncClient(base_url=self.app.url, auth=auth, timeout=30)

    async def add_user(self, username: str, role: Role, grids: Sequence[str] = ()) -> TestUser:
        """A user created through the admin API (password ``<username>-password``), usable with
        ``http(username)`` and tablets afterwards."""
        user = TestUser(username, f"{username}-password", role, tuple(grids))
        async with self.http("root") as admin:
            created = await admin.post(
                "/api/users",
                json={"username": username, "password": user.password, "role": role, "grids": list(grids)},
            )
            assert created.status_code == 201, created.text
        self.users[username] = user
        return user

    def micro_grids_of_zr01(self) -> tuple[str, str, tuple[float, float]]:
        """The micro-grid of ZR01 around ``ZR01_POINT``, another micro-grid of ZR01 and a WGS-84
        point inside that other one."""
        index = self.runtime.grids.index
        assert index is not None
        home = index.assign(*ZR01_POINT).micro_grid
        assert home is not None
        other = next(a for a in index.by_code.values() if a.parent == "ZR01" and a.code != home)
        inner = other.geometry.representative_point()
        return home, other.code, (inner.x, inner.y)

    async def run_worker(self) -> dict[str, int]:
        stats = await ChangeFollower(self.runtime).run_once()
        return {"changes": stats.changes, "published": stats.published, **stats.outcomes}

    async def stop(self) -> None:
        await asyncio.to_thread(self.app.stop)
        await self.runtime.close()


def stack_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The environment of a ``gridpatrol`` process working on this stack's CouchDB and SQL."""
    s = stack.settings
    return {
        "PATH": os.environ.get("PATH", ""),
        "GRIDPATROL_ENV": "test",
        "GRIDPATROL_DATA_DIR": str(s.data_dir),
        "GRIDPATROL_DATABASE_URL": s.database.url,
        "GRIDPATROL_COUCH_URL": s.couch.url,
        "GRIDPATROL_COUCH_USER": s.couch.username,
        "GRIDPATROL_COUCH_PASSWORD": s.couch.password,
        "GRIDPATROL_COUCH_DB_PREFIX": s.couch.db_prefix,
        "GRIDPATROL_SECRET_KEY": s.auth.secret_key,
        **extra,
    }
