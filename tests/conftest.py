"""Shared fixtures. The environment is fixed before anything reads settings."""

import os

os.environ.setdefault("GRIDPATROL_ENV", "test")

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from server.devcouch import LocalCouch
from tests.support.stack import (
    COUCH_ADMIN,
    POSTGRES_ADMIN_URL,
    Stack,
    create_pg_database,
    drop_pg_database,
)
from tests.support.tablet import Tablet

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def couch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCouch]:
    """One pouchdb-server per test session, on a free port; tests isolate by database prefix."""
    couch = LocalCouch(tmp_path_factory.mktemp("couch"), in_memory=True)
    couch.start()
    couch.ensure_admin(*COUCH_ADMIN)
    yield couch
    couch.stop()


@pytest.fixture(params=SQL_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty SQL database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gridpatrol.sqlite3'}"
        return
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL must be reachable at 127.0.0.1:5432 in CI")
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432 (required in CI)")
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
async def stack(couch_server: LocalCouch, database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await Stack.start(couch_url=couch_server.url, database_url=database_url, data_dir=tmp_path)
    yield running
    await running.stop()


TabletFactory = Callable[..., Awaitable[Tablet]]


@pytest.fixture
async def tablet_factory(stack: Stack) -> AsyncIterator[TabletFactory]:
    """Open tablets logged in as a stack user (Basic auth by default); all closed afterwards."""
    opened: list[Tablet] = []

    async def open_tablet(username: str | None = None, **kwargs: object) -> Tablet:
        if username is not None:
            kwargs.setdefault("username", username)
            kwargs.setdefault("password", stack.users[username].password)
        tablet = await Tablet.open(stack.sync_url(), **kwargs)  # type: ignore[arg-type]
        opened.append(tablet)
        return tablet

    yield open_tablet
    for tablet in opened:
        await tablet.close()
