"""``/health`` answers 503, naming the store, when CouchDB or SQL is down; ``/health/worker``
tells whether a merge worker is running well."""

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest

from server.devcouch import LocalCouch, free_port
from server.settings import Settings
from sync.worker import STOPPED, ChangeFollower
from tests.support.stack import COUCH_ADMIN, AppServer, Stack

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path, couch_url: str, database_url: str) -> Settings:
    return Settings.from_env(
        {
            "GRIDPATROL_ENV": "test",
            "GRIDPATROL_DATA_DIR": str(tmp_path),
            "GRIDPATROL_DATABASE_URL": database_url,
            "GRIDPATROL_COUCH_URL": couch_url,
            "GRIDPATROL_COUCH_USER": COUCH_ADMIN[0],
            "GRIDPATROL_COUCH_PASSWORD": COUCH_ADMIN[1],
            "GRIDPATROL_COUCH_TIMEOUT": "2",
        }
    )


def _health(settings: Settings) -> httpx.Response:
    server = AppServer(settings)
    server.start()
    try:
        return httpx.get(server.url + "/health", timeout=15)
    finally:
        server.stop()


def test_couchdb_down_gives_503(tmp_path: Path) -> None:
    dead_couch = f"http://127.0.0.1:{free_port()}"
    response = _health(_settings(tmp_path, dead_couch, f"sqlite:///{tmp_path / 'ok.sqlite3'}"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["couchdb"]["ok"] is False
    assert body["checks"]["sql"]["ok"] is True


@pytest.mark.parametrize(
    "database_url",
    [
        "sqlite:////nonexistent-dir-for-gridpatrol/x.sqlite3",
        pytest.param(
            f"postgresql+psycopg://postgres@127.0.0.1:5432/gp_missing_{secrets.token_hex(4)}",
            marks=pytest.mark.postgres,
        ),
    ],
)
def test_sql_down_gives_503(tmp_path: Path, couch_server: LocalCouch, database_url: str) -> None:
    response = _health(_settings(tmp_path, couch_server.url, database_url))
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["sql"]["ok"] is False
    assert checks["couchdb"]["ok"] is True


async def test_worker_health_follows_the_worker(stack: Stack) -> None:
    """``/health/worker``: 503 before any worker ran, 200 while one follows, 503 once it stopped."""

    async def worker_health() -> httpx.Response:
        async with stack.http() as client:
            return await client.get("/health/worker")

    before = await worker_health()
    assert (before.status_code, before.json()["workers"]) == (503, [])
    follower = ChangeFollower(stack.runtime)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run_forever(stop))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while (await worker_health()).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, "the follower never reported"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    after = await worker_health()
    assert after.status_code == 503
    (worker,) = after.json()["workers"]
    assert (worker["worker_id"], worker["healthy"]) == (follower.worker_id, False)
    assert worker["last_error"] == STOPPED


@pytest.mark.parametrize(
    "database_url",
    [
        "sqlite:////nonexistent-dir-for-gridpatrol/x.sqlite3",
        pytest.param(
            f"postgresql+psycopg://postgres@127.0.0.1:5432/gp_missing_{secrets.token_hex(4)}",
            marks=pytest.mark.postgres,
        ),
    ],
)
@pytest.mark.parametrize("path", ["/api/cases", "/sync/field"])
def test_requests_while_sql_is_down_get_503_with_a_reason(
    tmp_path: Path, couch_server: LocalCouch, database_url: str, path: str
) -> None:
    """Every request needs SQL (accounts, cases, checkpoints): while it is away the answer says so
    in both languages and invites a retry, instead of a bare 500."""
    server = AppServer(_settings(tmp_path, couch_server.url, database_url))
    server.start()
    try:
        response = httpx.get(server.url + path, auth=("leader1", "whatever"), timeout=15)
    finally:
        server.stop()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "service_unavailable"
    assert "数据库" in body["reason"] and "database" in body["reason"]
    assert response.headers["retry-after"] == "5"
