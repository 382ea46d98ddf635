"""Requests a client got wrong: each is CouchDB's 400 ``{"error": "bad_request", "reason"}``
naming what was wrong, never a 500 (which a tablet retries without end)."""

import httpx
import pytest

from server.gateway._params import MAX_JSON_DEPTH, MAX_UUIDS
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DB = "/sync/field"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _assert_bad_request(answer: httpx.Response, *words: str) -> None:
    assert answer.status_code == 400, (answer.request.url, answer.text)
    body = answer.json()
    assert body["error"] == "bad_request"
    assert " / " in body["reason"]  # Chinese first, English second
    for word in words:
        assert word in body["reason"]


async def test_json_nested_too_deep_is_a_400(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        for depth in (MAX_JSON_DEPTH + 1, 1200):
            deep_docs = b'{"docs": ' + _nested(depth) + b"}"
            for endpoint, raw in [("_bulk_docs", deep_docs), ("_revs_diff", _nested(depth))]:
                answer = await client.post(
                    f"{DB}/{endpoint}", content=raw, headers={"Content-Type": "application/json"}
                )
                _assert_bad_request(answer, str(MAX_JSON_DEPTH))
        deep_keys = await client.get(f"{DB}/_all_docs", params={"keys": _nested(1200).decode()})
        _assert_bad_request(deep_keys, "keys")
        deep_open_revs = await client.get(f"{DB}/grid:ZR01", params={"open_revs": _nested(1200).decode()})
        _assert_bad_request(deep_open_revs, "open_revs")
        login = await client.post(
            "/sync/_session",
            content=b'{"name": ' + _nested(1200) + b"}",
            headers={"Content-Type": "application/json"},
        )
        _assert_bad_request(login, str(MAX_JSON_DEPTH))
        # what a document really nests is far from the limit
        fine = await client.post(f"{DB}/_bulk_docs", json={"docs": [hazard("vol1", photo=False)]})
        assert fine.status_code == 201


async def test_query_parameters_that_are_not_integers_are_a_400(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        _assert_bad_request(await client.get("/sync/_uuids", params={"count": "x"}), "count")
        _assert_bad_request(await client.get("/sync/_uuids", params={"count": "-3"}), "count")
        many = (await client.get("/sync/_uuids", params={"count": "5000"})).json()["uuids"]
        assert len(many) == MAX_UUIDS
        for name, value in [("limit", "x"), ("skip", "x"), ("limit", "-1"), ("skip", "-2")]:
            _assert_bad_request(await client.get(f"{DB}/_all_docs", params={name: value}), name)
        for name, value in [("timeout", "x"), ("heartbeat", "x"), ("heartbeat", "0"), ("heartbeat", "-5")]:
            answer = await client.get(
                f"{DB}/_changes", params={"feed": "longpoll", "since": "now", name: value}
            )
            _assert_bad_request(answer, name)
        _assert_bad_request(await client.get(f"{DB}/_changes", params={"limit": "ten"}), "limit")
        _assert_bad_request(await client.get(f"{DB}/_all_docs", params={"keys": '{"a": 1}'}), "keys")
        _assert_bad_request(await client.get(f"{DB}/grid:ZR01", params={"open_revs": "5"}), "open_revs")
        # the values PouchDB sends still work
        assert (await client.get(f"{DB}/_all_docs", params={"limit": "2", "skip": "0"})).status_code == 200
        assert (await client.get(f"{DB}/grid:ZR01", params={"open_revs": "all"})).status_code == 200


async def test_bodies_of_the_wrong_shape_are_a_400(stack: Stack) -> None:
    async with stack.http("vol1") as client:
        for docs in ([1], ["grid:ZR01"], [{"id": 5}], [{"id": "grid:ZR01", "rev": 7}], [{}]):
            _assert_bad_request(await client.post(f"{DB}/_bulk_get", json={"docs": docs}), "docs")
        for revs in ({"a": 5}, {"a": "1-abc"}, {"a": [1]}, {"a": None}):
            _assert_bad_request(await client.post(f"{DB}/_revs_diff", json=revs), "_revs_diff")
        answer = await client.post(f"{DB}/_revs_diff", json={"never-was": ["1-abc"]})
        assert answer.json() == {"never-was": {"missing": ["1-abc"]}}


async def test_a_body_nested_too_deep_for_the_api_is_a_400(stack: Stack) -> None:
    async with stack.http() as client:
        for path in ("/api/auth/token", "/api/users"):
            answer = await client.post(
                path, content=_nested(5000), headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 400, (path, answer.status_code, answer.text[:200])
            assert answer.json()["error"] == "bad_request" and "嵌套" in answer.json()["reason"]
