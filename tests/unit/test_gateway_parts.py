"""Pure parts of the gateway: sequence tokens, path splitting."""

import base64
import json
import secrets
import time
import zlib

import pytest

from server.gateway._errors import GatewayError
from server.gateway._paths import CouchPath, parse_couch_path
from server.gateway._seq import decode_seq, encode_seq
from sync.db_infos import DbInfoCache

pytestmark = pytest.mark.unit


def test_sequence_tokens_round_trip_opaque_values() -> None:
    positions = {
        "ref": 12,
        "ZR01": "34-g1AAAACbeJzLYWBgYMpgTmHgzcvPy09JdcjLz8gvLskBCScyJNX___8_K5EBh3o2BAC3xiKd",
    }
    token = encode_seq(positions)
    assert token.startswith("gp1-")
    assert decode_seq(token) == positions


def test_sequence_tokens_keep_the_bytes_checkpoints_already_hold() -> None:
    """Tablets keep tokens in their checkpoints: the same positions must still give the same token."""
    positions: dict[str, str | int] = {
        "alert:ZR01": 0,
        "ref": 57,
        "ZR01": "34-g1AAAACbeJzLYWBgYMpgTmHgzcvPy09JdcjLz8gv",
    }
    packed = json.dumps(dict(sorted(positions.items())), separators=(",", ":")).encode()
    earlier = "gp1-" + base64.urlsafe_b64encode(zlib.compress(packed, 6)).decode().rstrip("=")
    assert encode_seq(positions) == earlier
    assert encode_seq(dict(reversed(positions.items()))) == earlier  # key order does not matter


@pytest.mark.parametrize("start", [None, "", "0", 0])
def test_start_tokens_mean_from_the_beginning(start: object) -> None:
    assert decode_seq(start) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["12-abc", "gp1-!!!", "gp1-" + "A" * 10, 17])
def test_malformed_tokens_are_a_400(bad: object) -> None:
    with pytest.raises(GatewayError) as info:
        decode_seq(bad)  # type: ignore[arg-type]
    assert info.value.status == 400


def _forged(payload: bytes) -> str:
    return "gp1-" + base64.urlsafe_b64encode(zlib.compress(payload, 9)).decode().rstrip("=")


@pytest.mark.parametrize(
    "forged",
    [
        _forged(b"[" * 100_000 + b"]" * 100_000),  # nesting deeper than the JSON parser goes
        _forged(b'{"a": "' + b"x" * (8 * 1024 * 1024) + b'"}'),  # 8 MB from a few KB of zlib
        "gp1-" + "A" * (300 * 1024),
    ],
)
def test_forged_tokens_are_a_400_without_unpacking_them(forged: str) -> None:
    with pytest.raises(GatewayError) as info:
        decode_seq(forged)
    assert info.value.status == 400


def test_a_token_of_hundreds_of_couchdb_3_sequences_still_decodes() -> None:
    positions: dict[str, str | int] = {
        f"grid:G{n:03d}": f"{n * 7919}-g1AAAA" + secrets.token_urlsafe(140) for n in range(500)
    }
    assert decode_seq(encode_seq(positions)) == positions


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/sync", CouchPath()),
        (b"/sync/", CouchPath()),
        (b"/sync/field", CouchPath(db="field")),
        (b"/sync/field/", CouchPath(db="field")),
        (b"/sync/field/_changes", CouchPath(db="field", endpoint="_changes")),
        (b"/sync/field/_local/abc%2Fdef", CouchPath(db="field", doc_id="_local/abc/def")),
        (
            b"/sync/field/_design/app/_view/x",
            CouchPath(db="field", doc_id="_design/app", attachment="_view/x"),
        ),
        (b"/sync/a%2Fb/doc%2B1%25", CouchPath(db="a/b", doc_id="doc+1%")),
        (b"/sync/field/doc/photo%201.png", CouchPath(db="field", doc_id="doc", attachment="photo 1.png")),
        (b"/sync/field/doc/dir/photo.png", CouchPath(db="field", doc_id="doc", attachment="dir/photo.png")),
        (b"/sync/field/%E5%B7%A1%E6%9F%A5", CouchPath(db="field", doc_id="巡查")),
    ],
)
def test_paths_are_split_before_decoding(raw: bytes, expected: CouchPath) -> None:
    assert parse_couch_path(raw, "/sync") == expected


def test_invalid_utf8_in_path_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        parse_couch_path(b"/sync/field/%ff%fe", "/sync")
    assert info.value.status == 400


def test_db_info_cache_keeps_answers_for_its_ttl_and_forgets_on_write() -> None:
    cache = DbInfoCache(ttl_s=0.05)
    cache.put("gp_grid_zr01", {"update_seq": "3-x"})
    assert cache.get("gp_grid_zr01") == {"update_seq": "3-x"}
    cache.forget("gp_grid_zr01")
    assert cache.get("gp_grid_zr01") is None
    cache.put("gp_grid_zr01", {"update_seq": "4-x"})
    time.sleep(0.06)
    assert cache.get("gp_grid_zr01") is None
