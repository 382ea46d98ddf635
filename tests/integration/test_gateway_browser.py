"""CORS with credentials, and PouchDB inside headless Chromium syncing through the gateway from
another origin (Basic auth and the ``_session`` cookie)."""

import asyncio
import functools
import json
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from server.devcouch import LocalCouch, find_node_modules, free_port
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[str]:
    """A static site on its own origin holding the tablet page and PouchDB's browser build."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(NODE_DIR / "browser" / "tablet.html", site / "tablet.html")
    shutil.copy(find_node_modules() / "pouchdb" / "dist" / "pouchdb.min.js", site / "pouchdb.min.js")
    server = ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(_QuietHandler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
async def cors_stack(
    couch_server: LocalCouch, database_url: str, tmp_path: Path, page_server: str
) -> AsyncIterator[Stack]:
    stack = await Stack.start(
        couch_url=couch_server.url,
        database_url=database_url,
        data_dir=tmp_path,
        extra_env={"GRIDPATROL_CORS_ORIGINS": page_server},
    )
    yield stack
    await stack.stop()


async def test_cors_preflight_allows_credentials_for_configured_origins(
    cors_stack: Stack, page_server: str
) -> None:
    async with httpx.AsyncClient(base_url=cors_stack.app.url) as client:
        preflight = await client.options(
            "/sync/field/_bulk_docs",
            headers={
                "Origin": page_server,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code in {200, 204}
        assert preflight.headers["access-control-allow-origin"] == page_server
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        stranger = await client.options(
            "/sync/field/_bulk_docs",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert stranger.headers.get("access-control-allow-origin") != "http://evil.example"

        simple = await client.get("/sync/", headers={"Origin": page_server})
        assert simple.headers["access-control-allow-origin"] == page_server
        assert simple.headers["access-control-allow-credentials"] == "true"


async def _run_browser(
    page_url: str, remote_url: str, user: str, password: str, mode: str, doc: dict
) -> dict:
    node = shutil.which("node")
    assert node is not None
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "browser.mjs"),
        page_url,
        remote_url,
        user,
        password,
        mode,
        json.dumps(doc),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=find_node_modules().parent,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert stdout, stderr.decode()
    outcome: dict = json.loads(stdout.decode().strip().splitlines()[-1])
    assert outcome["ok"], outcome
    return outcome


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["basic", "cookie"])
async def test_pouchdb_in_chromium_syncs_across_origins(
    cors_stack: Stack, page_server: str, mode: str
) -> None:
    doc = hazard("vol1", doc_id=f"from-browser-{mode}", photo=False, note="浏览器中记录")
    outcome = await _run_browser(
        f"{page_server}/tablet.html", cors_stack.sync_url(), "vol1", "vol1-password", mode, doc
    )
    result = outcome["result"]
    assert result["push_written"] == 1
    assert result["push_failures"] == 0
    assert result["pull_read"] > 30  # grid outlines and taxonomy from the reference database
    assert result["grid_name"] == "真光网格"
    assert outcome["status"] == "已同步 / synced"
    stored = await cors_stack.runtime.couch.get_doc(cors_stack.settings.couch.grid_db("ZR01"), doc["_id"])
    assert stored["note"] == "浏览器中记录"
