"""Checks of the gateway's query parameters and request bodies (``server.gateway._params``)."""

from typing import Any

import msgspec
import pytest

from server.gateway._errors import GatewayError
from server.gateway._params import (
    MAX_JSON_DEPTH,
    bulk_get_requests,
    decode_json,
    heartbeat_seconds,
    int_param,
    revs_diff_body,
    timeout_seconds,
)

pytestmark = pytest.mark.unit


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [0, 1, 5, MAX_JSON_DEPTH])
def test_json_up_to_the_depth_limit_decodes(depth: int) -> None:
    value = _nested(depth)
    assert decode_json(msgspec.json.encode(value), "请求体", "Request body") == value


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 5000])
def test_json_past_the_depth_limit_is_a_400(depth: int) -> None:
    with pytest.raises(GatewayError) as info:
        decode_json(b"[" * depth + b"]" * depth, "请求体", "Request body")
    assert info.value.status == 400
    assert f"{MAX_JSON_DEPTH}" in info.value.reason


def test_a_wide_document_is_not_deep() -> None:
    wide = {"docs": [{"location": {"lon": 1.0, "lat": 2.0}, "tags": ["a", "b"]} for _ in range(500)]}
    assert decode_json(msgspec.json.encode(wide), "请求体", "Request body") == wide


def test_integer_parameters() -> None:
    assert int_param({}, "limit") is None
    assert int_param({"limit": ""}, "limit") is None
    assert int_param({"limit": "7"}, "limit") == 7
    for bad in ("x", "1.5", "-1"):
        with pytest.raises(GatewayError) as info:
            int_param({"limit": bad}, "limit")
        assert info.value.status == 400 and "limit" in info.value.reason


def test_longpoll_timeout_and_heartbeat() -> None:
    assert timeout_seconds({}, 60.0) == 60.0
    assert timeout_seconds({"timeout": "500"}, 60.0) == 0.5
    assert timeout_seconds({"timeout": "999999999"}, 60.0) == 60.0
    assert heartbeat_seconds({}) is None
    assert heartbeat_seconds({"heartbeat": "true"}) == 60.0
    assert heartbeat_seconds({"heartbeat": "10000"}) == 10.0
    for timeout in ("nan", "x", "-1"):
        with pytest.raises(GatewayError):
            timeout_seconds({"timeout": timeout}, 60.0)
    for heartbeat in ("0", "-1", "1e3", "x"):  # zero or less would send newlines in a busy loop
        with pytest.raises(GatewayError):
            heartbeat_seconds({"heartbeat": heartbeat})


def test_bulk_get_and_revs_diff_bodies() -> None:
    good = [{"id": "a"}, {"id": "b", "rev": "1-x"}, {"id": "c", "rev": None}]
    assert bulk_get_requests({"docs": good}) == good
    for docs in (None, "a", [1], [{"id": 1}], [{"id": "a", "rev": 2}]):
        with pytest.raises(GatewayError):
            bulk_get_requests({"docs": docs})
    assert revs_diff_body({"a": ["1-x", "2-y"]}) == {"a": ["1-x", "2-y"]}
    for body in ({"a": 5}, {"a": "1-x"}, {"a": [1]}):
        with pytest.raises(GatewayError):
            revs_diff_body(body)
