"""Query parameters and request bodies of CouchDB's API, checked before the gateway uses them.

Whatever a client gets wrong here is CouchDB's 400 ``bad_request`` naming what was wrong, never a
500: a tablet that sees a 500 retries the same request forever, and a person reading the log
learns nothing.
"""

from collections.abc import Mapping
from typing import Any

import msgspec

from server.gateway._errors import GatewayError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_UUIDS",
    "MIN_HEARTBEAT_MS",
    "all_docs_keys",
    "bulk_get_requests",
    "changes_doc_ids",
    "decode_json",
    "heartbeat_seconds",
    "int_param",
    "open_revs_param",
    "revs_diff_body",
    "timeout_seconds",
]

MAX_JSON_DEPTH = 64
"""Nesting a request may have. Our documents nest four or five levels; deeper JSON is no document
of ours, and past ~1,000 levels the decoder (and any recursive code after it) overflows the stack."""
MAX_UUIDS = 1000
"""CouchDB's ``uuids/max_count``."""
MIN_HEARTBEAT_MS = 100
"""A shorter heartbeat is raised to this: one newline a millisecond, for a minute, is a busy loop
a client could hold open many times over, and proxies need one every few seconds at most."""


def _nesting_within(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` containers deep: level by level, without
    recursion, comparing types exactly (decoded JSON has no subclasses). A batch of 100 findings
    takes ~0.3 ms, less than decoding it."""
    level = [value]
    for _ in range(limit):
        nested: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is not dict and kind is not list:
                continue
            for child in item.values() if kind is dict else item:
                child_kind = type(child)
                if child_kind is dict or child_kind is list:
                    nested.append(child)
        if not nested:
            return True
        level = nested
    return False


def decode_json(raw: bytes | str, what_zh: str, what_en: str) -> Any:
    """JSON from a client, at most ``MAX_JSON_DEPTH`` deep; ``what`` names it in the 400 reason."""
    too_deep = GatewayError.bad_request(
        f"{what_zh}嵌套超过 {MAX_JSON_DEPTH} 层", f"{what_en} nests deeper than {MAX_JSON_DEPTH} levels"
    )
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise GatewayError.bad_request(f"{what_zh}不是有效的 JSON", f"{what_en} is not valid JSON") from exc
    except RecursionError as exc:
        raise too_deep from exc
    if not _nesting_within(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


def int_param(params: Mapping[str, str], name: str, *, minimum: int = 0) -> int | None:
    """An integer query parameter (None when absent or empty), at least ``minimum``."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise GatewayError.bad_request(f"{name} 必须是整数", f"{name} must be an integer") from exc
    if value < minimum:
        raise GatewayError.bad_request(
            f"{name} 不能小于 {minimum}", f"{name} must be an integer of at least {minimum}"
        )
    return value


def timeout_seconds(params: Mapping[str, str], cap_s: float) -> float:
    """A longpoll's ``timeout`` (milliseconds) in seconds, at most ``cap_s``."""
    timeout_ms = int_param(params, "timeout")
    return cap_s if timeout_ms is None else min(timeout_ms / 1000, cap_s)


def heartbeat_seconds(params: Mapping[str, str]) -> float | None:
    """A longpoll's ``heartbeat`` in seconds: ``true`` is CouchDB's default of 60 s, else
    milliseconds (a positive number, as CouchDB wants it), at least ``MIN_HEARTBEAT_MS``."""
    if params.get("heartbeat") == "true":
        return 60.0
    heartbeat_ms = int_param(params, "heartbeat", minimum=1)
    return None if heartbeat_ms is None else max(heartbeat_ms, MIN_HEARTBEAT_MS) / 1000


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def changes_doc_ids(params: Mapping[str, str], body: Any, direct: bool) -> list[str] | None:
    """The ids a ``_changes`` request keeps to (``filter=_doc_ids``); None for every document."""
    if direct:
        return None  # a real database's filters are CouchDB's own (see _admin)
    if params.get("filter") != "_doc_ids":
        if params.get("filter"):
            raise GatewayError.bad_request(
                "同步不支持该过滤器", f"filter {params['filter']!r} is not supported here"
            )
        return None
    raw = body.get("doc_ids") if isinstance(body, dict) else None
    if raw is None and "doc_ids" in params:
        raw = decode_json(params["doc_ids"], "doc_ids ", "doc_ids")
    if not isinstance(raw, list):
        raise GatewayError.bad_request("doc_ids 必须是 JSON 数组", "doc_ids must be a JSON array")
    return [str(i) for i in raw]


def all_docs_keys(params: Mapping[str, str], body: Mapping[str, Any] | None) -> list[str] | None:
    """``keys`` of an ``_all_docs`` request: from the POST body, else the query string."""
    keys: Any = None
    if body is not None:
        keys = body.get("keys")
    elif "keys" in params:
        keys = decode_json(params["keys"], "keys ", "keys")
    if keys is None:
        return None
    if not _strings(keys):
        raise GatewayError.bad_request("keys 必须是字符串数组", "keys must be an array of strings")
    return list(keys)


def open_revs_param(params: Mapping[str, str]) -> None:
    """``open_revs`` must be ``all`` or a JSON array of revisions."""
    raw = params.get("open_revs")
    if raw is None or raw == "all":
        return
    if not _strings(decode_json(raw, "open_revs ", "open_revs")):
        raise GatewayError.bad_request("open_revs 必须是 JSON 数组", "open_revs must be a JSON array")


def revs_diff_body(body: Mapping[str, Any]) -> dict[str, list[str]]:
    """``_revs_diff``'s ``{id: [rev, ...]}``."""
    if not all(_strings(revs) for revs in body.values()):
        raise GatewayError.bad_request(
            "_revs_diff 的每个文档必须对应修订号字符串数组",
            "_revs_diff wants each document id to map to an array of revision strings",
        )
    return dict(body)


def bulk_get_requests(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``_bulk_get``'s ``docs``: objects with a string ``id`` and, if any, a string ``rev``."""
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise GatewayError.bad_request("请求体必须包含 docs 数组", "Request body must contain a docs array")
    for request in docs:
        if not isinstance(request, dict) or not (
            isinstance(request.get("id"), str) and isinstance(request.get("rev", ""), str | None)
        ):
            raise GatewayError.bad_request(
                "docs 的每一项必须是带字符串 id（及 rev）的对象",
                "each entry of docs must be an object with a string id (and rev)",
            )
    return docs
