"""Our CouchDB client's error mapping and request shapes, with httpx.MockTransport (no server)."""

import json

import httpx
import pytest

import sync.couch
from sync.couch import (
    CouchClient,
    CouchConflict,
    CouchNotFound,
    CouchPreconditionFailed,
    CouchStatusError,
    CouchTimeout,
    CouchUnauthorized,
    CouchUnavailable,
    doc_path,
)

pytestmark = pytest.mark.unit


def _client(handler) -> CouchClient:  # type: ignore[no-untyped-def]
    return CouchClient("http://couch.invalid", "svc", "pw", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (401, "unauthorized", CouchUnauthorized),
        (404, "not_found", CouchNotFound),
        (409, "conflict", CouchConflict),
        (500, "boom", CouchStatusError),
    ],
)
async def test_status_errors_map_to_specific_exceptions(status: int, error: str, expected: type) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": error, "reason": "because"})

    async with _client(handler) as client:
        with pytest.raises(expected) as info:
            await client.get_doc("db", "doc")
    assert info.value.status == status
    assert info.value.reason == "because"


async def test_transport_failures_never_leak_httpx() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with _client(refuse) as client:
        with pytest.raises(CouchUnavailable):
            await client.server_info()
    async with _client(slow) as client:
        with pytest.raises(CouchTimeout):
            await client.server_info()


async def test_create_db_treats_412_as_existing() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.raw_path.decode())
        if len(calls) == 1:
            return httpx.Response(201, json={"ok": True})
        return httpx.Response(412, json={"error": "file_exists", "reason": "exists"})

    async with _client(handler) as client:
        assert await client.create_db("a/b+c") is True
        assert await client.create_db("a/b+c") is False
    assert calls[0] == "/a%2Fb%2Bc"


async def test_bulk_docs_sends_new_edits_false_and_returns_per_doc_errors() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        return httpx.Response(201, json=[{"id": "x", "error": "forbidden", "reason": "no"}])

    async with _client(handler) as client:
        result = await client.bulk_docs("db", [{"_id": "x", "_rev": "1-a"}], new_edits=False)
    assert seen == {"docs": [{"_id": "x", "_rev": "1-a"}], "new_edits": False}
    assert result == [{"id": "x", "error": "forbidden", "reason": "no"}]


async def test_changes_passes_opaque_since_and_bools() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(dict(request.url.params))
        return httpx.Response(200, json={"results": [], "last_seq": "9-abc"})

    async with _client(handler) as client:
        page = await client.changes("db", {"since": "8-g1AAA", "include_docs": True, "limit": 5})
    assert seen == {"since": "8-g1AAA", "include_docs": "true", "limit": "5"}
    assert page["last_seq"] == "9-abc"


def test_doc_paths_encode_each_segment() -> None:
    assert doc_path("a/b", "x/y+z") == "/a%2Fb/x%2Fy%2Bz"
    assert doc_path("db", "_design/app") == "/db/_design/app"
    assert doc_path("db", "_local/r%1") == "/db/_local/r%251"
    assert doc_path("db", "doc", "photo 1.png") == "/db/doc/photo%201.png"


def test_public_names_match_all() -> None:
    public = {name for name in dir(sync.couch) if not name.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(sync.couch, n)).__name__ == "module"}
    assert set(sync.couch.__all__) == public - modules
    assert issubclass(CouchPreconditionFailed, CouchStatusError)


async def test_requests_are_counted_by_database_and_endpoint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True, "results": [], "rows": []})

    client = _client(handler)
    await client.changes("grid/zr01", {"since": 0})
    await client.changes("grid/zr01", {"since": 0})
    await client.all_docs("grid/zr01", keys=["a"])
    await client.get_doc("grid/zr01", "_design/scope")
    await client.get_doc("grid/zr01", "plain id")
    await client.request("GET", "/_all_dbs")
    await client.db_info("ref")
    assert client.requests == {
        ("grid/zr01", "_changes"): 2,
        ("grid/zr01", "_all_docs"): 1,
        ("grid/zr01", "doc"): 2,
        ("", "_all_dbs"): 1,
        ("ref", ""): 1,
    }
    await client.aclose()
